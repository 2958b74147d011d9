# spurlab: discover, measure and mitigate spurious features in image classifiers.
# Rules are thin: each calls the `spurlab` CLI with explicit paths (see rules/*.smk).
import shutil

from snakemake.exceptions import WorkflowError

# Every rule runs the `spurlab` command: say so once here rather than "command not found" per job.
if shutil.which("spurlab") is None:
    raise WorkflowError(
        "spurlab: the `spurlab` command is not on PATH; activate the environment "
        "(source .venv/bin/activate, after `make setup`) or run through make (make run)"
    )

from snakemake.utils import min_version

from spurlab.config import (
    benchmark_on,
    check_paths,
    enabled,
    imported_models,
    lightweight_model,
    load_config,
    mitigation_models,
    model_dirs_arg,
    model_section,
    noise_models,
    one_of,
    section_for_set,
    set_names,
    set_paths,
    spuriosity_models,
    trained_models,
    validate_config,
)
from spurlab.errors import SpurlabError
from spurlab.io.code import rule_code_sha256

min_version("9.0")


# The default config applies only when none is given: Snakemake merges a `configfile:` with
# --configfile key by key, which would mix two cue tables.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


# Jobs re-read the config files (merged key by key, as Snakemake merges them); inline --config
# values would not reach them.
if workflow.config_settings.config:
    raise WorkflowError(
        "spurlab: --config KEY=VALUE overrides are not forwarded to jobs; put them in a YAML "
        "file and add it after the base config: --configfile config/config.yaml my_overrides.yaml"
    )

# Schema first (finite numbers, unknown keys, types), then every cross-key rule
# (spurlab.config.check_semantics, the checks `spurlab validate-config` runs; no rule file checks
# the config): a bad config fails here, before any job writes under results/. The files are read
# again through spurlab's loader, which Snakemake's does not replace: UTF-8 only, a key given twice
# is an error (Snakemake's loader keeps the last value). Each failure is one line naming the file or key.
try:
    load_config(workflow.configfiles)
    validate_config(config)
    # the input folders and files it names (image folder roots, synset maps, checkpoints; not the
    # human answer files, whose absence is a normal state): a missing one fails here too
    check_paths(config)
except SpurlabError as e:
    raise WorkflowError(f"spurlab: error: {e}") from None

CONFIGFILES = " ".join(map(str, workflow.configfiles))
SETS = set_names(config)
MODELS = list(config["models"])
NOISE_MODELS = noise_models(config)
SPU_MODELS = spuriosity_models(config)
LW_MODEL = lightweight_model(config)
# The benchmark's own stages: absent from the DAG (and their targets undefined) when off.
BAM_ON = enabled(config, "bam")
PH_ON = enabled(config, "posthoc")
MIT_ON = enabled(config, "mitigation")
# Interventional checks of explanations: on when configured and a family to check is on.
IV_ON = enabled(config, "interventions") and (BAM_ON or PH_ON or benchmark_on(config))
# Per-class work (NPCA bases and components, D(i, j), noise) runs as this many class-shard jobs,
# each followed by a merge into the one file its consumers read (spurlab.shards).
N_SHARDS = config["compute"]["class_shards"]
SHARDS = list(range(N_SHARDS))


wildcard_constraints:
    shard=r"\d+",


include: "rules/datasets.smk"
include: "rules/models.smk"
include: "rules/discover.smk"
include: "rules/measure.smk"
include: "rules/mitigate.smk"
include: "rules/npca.smk"


if MIT_ON:

    include: "rules/mitigation.smk"


if BAM_ON:

    include: "rules/bam.smk"


if PH_ON:

    include: "rules/posthoc.smk"


if IV_ON:

    include: "rules/interventions.smk"


include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.datasets.input,
        rules.models.input,
        rules.salient.input,
        rules.spuriosity.input,
        rules.npca.input,
        rules.bam.input if BAM_ON else [],
        rules.posthoc.input if PH_ON else [],
        rules.mitigation.input if MIT_ON else [],
        rules.interventions.input if IV_ON else [],
        rules.report.input,


# Code changes rerun (docs/architecture.md#code-provenance): every rule gets the hash of the
# package source its `spurlab` command can run as the param `code_sha256` (the whole package's for
# a rule without one), which its outputs record too; Snakemake reruns a job whose params changed.
for _rule in workflow.rules:
    try:
        _rule.set_params(code_sha256=rule_code_sha256(_rule.name, _rule.shellcmd))
    except SpurlabError as e:
        raise WorkflowError(f"spurlab: error: {e}") from None
