"""The static site: one page per (class, feature) and (class, component) plus the index, static
files only, links that resolve, search data covering every page."""

import json
import re


def test_page_count_is_pairs_plus_components_plus_index(small_site):
    out, counts = small_site["out"], small_site["counts"]
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == small_site["n_pairs"] + small_site["n_components"] + 1 == counts["pages"]
    assert counts["feature_pages"] == small_site["n_pairs"] and counts["component_pages"] == small_site["n_components"]
    assert not list(out.parent.glob(".site.*"))  # built beside, renamed onto the output


def test_static_files_only_and_every_link_resolves(small_site):
    out = small_site["out"]
    for page in out.rglob("*.html"):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page  # no CDN, no network
        for ref in re.findall(r'(?:src|href)="([^"]+)"', text):
            target = (page.parent / ref.split("?")[0]).resolve()
            assert target.is_file(), f"{page.name}: {ref} missing"


def test_index_search_data_lists_every_page_by_class(small_site):
    out = small_site["out"]
    data = json.loads(re.search(r"var PAGES = (\[.*?\]);</script>", (out / "index.html").read_text()).group(1))
    assert len(data) == small_site["n_pairs"] + small_site["n_components"]
    assert {e["class_name"] for e in data} <= set(small_site["classes"])
    assert all((out / e["href"]).is_file() for e in data)
    # a feature page shows top images, heatmaps, attacks and bottom images as files
    page = next(out.glob("pages/feature_*.html")).read_text()
    for heading in ("Top images", "Neural activation maps", "Feature attacks", "Bottom images", "Annotation and votes"):
        assert heading in page


def test_rebuild_is_byte_identical(small_site, tmp_path):
    from tests.report.conftest import build

    again = tmp_path / "site"
    build(small_site["dir"], again)
    first = {p.relative_to(small_site["out"]): p.read_bytes() for p in small_site["out"].rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first == second


def test_pages_link_classes_sharing_a_feature(small_site):
    out, names = small_site["out"], small_site["classes"]
    page = (out / "pages" / "feature_c0_f7.html").read_text()
    assert 'href="feature_c1_f7.html"' in page and names[1] in page
    assert "feature_c0_f7.html" not in page.split("Other classes")[1]  # not itself
