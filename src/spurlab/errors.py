"""One exception type for bad input: the CLI prints its message on one line and exits non-zero."""


class SpurlabError(Exception):
    """Bad input (config key, file, row). The message names what is wrong and where."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
