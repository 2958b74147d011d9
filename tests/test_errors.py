"""`SpurlabError`: the one exception for bad input, whose message the CLI prints on one line."""

import pytest

from spurlab.errors import SpurlabError


def test_message_is_one_line_with_single_spaces():
    e = SpurlabError("config key a.b:\n  expected\tan integer,   got 'x'\n")
    assert str(e) == "config key a.b: expected an integer, got 'x'"
    assert e.args == ("config key a.b: expected an integer, got 'x'",)


def test_any_message_is_made_a_string_and_the_error_is_an_exception():
    assert str(SpurlabError(Exception("a\nb"))) == "a b"
    with pytest.raises(Exception, match="^x y$"):
        raise SpurlabError("x\n\ny")
