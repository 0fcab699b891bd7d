"""AbstractorWidget driven from Python, with no front end connected.

The widget is a view: these tests check that its synced state is right after every
input, that each update costs one ``analyze`` call, and that nothing a browser can
send (state updates or custom messages) raises in the kernel.
"""

from __future__ import annotations

import json

import pytest
import traitlets as t
import traitlets

from abstractor_widgets import Abstractor, AbstractorWidget
from abstractor_widgets.widget import (
    MAX_LABEL_CHARS,
    MAX_TEXT_CHARS,
    N_SIMILAR_MAX,
    N_SIMILAR_MIN,
    PALETTE,
    PATTERNS,
    topic_style,
)

HUGE = "x" * 10_000_000  # 10 MB


def covers(spans: list[dict], text: str) -> bool:
    """Spans are contiguous, in order, and concatenate to ``text``."""
    position = 0
    for span in spans:
        if span["start"] != position or text[span["start"] : span["end"]] != span["text"]:
            return False
        position = span["end"]
    return position == len(text) and "".join(s["text"] for s in spans) == text


@pytest.fixture()
def ab(synthetic_abstractor) -> Abstractor:
    return synthetic_abstractor


@pytest.fixture()
def text(ab) -> str:
    """A real abstract of the corpus (topical for this model)."""
    return ab.document("2401.00003").text


@pytest.fixture()
def widget(ab, text) -> AbstractorWidget:
    return AbstractorWidget(ab, text=text, n_similar=3)


@pytest.fixture()
def calls(ab, monkeypatch) -> list[tuple[str, int]]:
    """Record every ``ab.analyze`` call."""
    seen: list[tuple[str, int]] = []
    original = ab.analyze

    def analyze(text, n=5, method=None):
        seen.append((text, n) if method is None else (text, n, method))
        return original(text, n, method=method)

    monkeypatch.setattr(ab, "analyze", analyze)
    return seen


def send(widget: AbstractorWidget, content) -> None:
    """Deliver a custom message the way ipywidgets does (without its error swallowing)."""
    widget._handle_custom_msg(content, [])


# ---------------------------------------------------------------------- construction
def test_initial_state(ab, widget, text):
    assert covers(widget.spans, text)
    assert any(s["topic"] is not None for s in widget.spans)
    assert len(widget.doc_topics) == ab.n_topics
    assert sum(widget.doc_topics) == pytest.approx(1.0, abs=1e-3)
    assert len(widget.similar) == 3
    assert widget.reason == "" and widget.error == "" and widget.busy is False
    assert [t["id"] for t in widget.topics] == list(range(ab.n_topics))
    for topic in widget.topics:
        assert (topic["color"], topic["pattern"]) == topic_style(topic["id"])
        assert topic["label"] and topic["terms"]


def test_hits_are_json_safe_and_lean(widget):
    hit = widget.similar[0]
    assert set(hit) == {"id", "title", "score", "topics", "url", "categories", "published",
                        "shared_topics", "shared_terms"}  # fmt: skip
    assert "abstract" not in hit  # loaded on demand by id: keeps each update small
    assert hit["url"].startswith("https://arxiv.org/abs/")
    assert 0.0 <= hit["score"] <= 1.0
    json.dumps(widget.get_state())  # every synced value serialises


def test_facade_and_artifact_constructors(ab, synthetic_artifact):
    assert isinstance(ab.widget(n_similar=2), AbstractorWidget)
    w = Abstractor.load(synthetic_artifact).widget(text="", n_similar=7)
    assert w.n_similar == 7 and w.abstractor.n_topics == ab.n_topics


def test_constructor_makes_one_analysis(ab, text, calls):
    AbstractorWidget(ab, text=text, n_similar=4)
    assert calls == [(text, 4)]


# ---------------------------------------------------------------------- updates
def test_setting_text_recomputes_once(ab, widget, calls):
    other = ab.document("2401.00004").text
    widget.text = other
    assert calls == [(other, 3)]
    assert covers(widget.spans, other)
    assert len(widget.similar) == 3


def test_observe_sees_each_update_once(ab, widget):
    seen = []
    widget.observe(lambda change: seen.append(change["new"]), names="spans")
    widget.text = ab.document("2401.00005").text
    widget.text = ab.document("2401.00006").text
    assert len(seen) == 2


@pytest.mark.parametrize(("asked", "got"), [(0, 1), (-7, 1), (1, 1), (12, 12), (50, 50), (51, 50), (10**9, 50)])
def test_n_similar_is_clamped(widget, asked, got):
    widget.n_similar = asked
    assert widget.n_similar == got
    assert len(widget.similar) == got


def test_n_similar_from_constructor_is_clamped(ab, text):
    assert AbstractorWidget(ab, text=text, n_similar=500).n_similar == N_SIMILAR_MAX


def test_changing_n_recomputes_once(widget, calls):
    widget.n_similar = 9
    assert len(calls) == 1 and calls[0][1] == 9
    assert len(widget.similar) == 9


@pytest.mark.parametrize("empty", ["", "   \n\t "])
def test_empty_text_has_a_reason(widget, empty):
    widget.text = empty
    assert widget.reason  # the view shows it as its empty state
    assert widget.similar == []
    assert covers(widget.spans, empty)
    assert widget.error == ""


def test_text_without_topical_words_has_a_reason(widget):
    widget.text = "the of and 2024 with"
    assert widget.reason and widget.similar == []
    assert all(s["topic"] is None for s in widget.spans)


def test_text_from_python_over_the_limit_raises_trait_error(widget, text):
    with pytest.raises(traitlets.TraitError):
        widget.text = "x" * (MAX_TEXT_CHARS + 1)
    assert widget.text == text


def test_analysis_failure_sets_error_not_raise(widget, monkeypatch, caplog):
    def broken(text, n=5, method=None):
        raise RuntimeError("index exploded")

    monkeypatch.setattr(widget.abstractor, "analyze", broken)
    widget.text = "graph neural networks"
    # the visitor sees a short message; the exception is in the log (issue 12: no internals on the page)
    assert widget.error.startswith("The analysis failed") and "exploded" not in widget.error
    assert "index exploded" in caplog.text
    assert covers(widget.spans, "graph neural networks")
    assert widget.similar == [] and widget.busy is False


def test_highlight_topic(ab, widget):
    widget.highlight_topic = ab.n_topics - 1
    widget.highlight_topic = None
    with pytest.raises(traitlets.TraitError):
        widget.highlight_topic = ab.n_topics


# ---------------------------------------------------------------------- messages
def test_random_abstract(ab, widget):
    send(widget, {"type": "random"})
    assert widget.error == ""
    doc = ab.document(widget.source["id"])
    assert widget.text == doc.text
    assert widget.source["url"].endswith(doc.id)
    assert covers(widget.spans, doc.text)
    assert doc.id not in [h["id"] for h in widget.similar]  # a paper is not "similar" to itself
    assert len(widget.similar) == widget.n_similar


def test_load_similar(ab, widget, calls):
    target = widget.similar[0]["id"]
    send(widget, {"type": "load_similar", "id": target})
    assert widget.error == ""
    assert widget.text == ab.document(target).text
    assert widget.source["id"] == target
    assert target not in [h["id"] for h in widget.similar]
    assert len(calls) == 1


class _RecordingComm:
    """A comm with a kernel: the widget sends its state updates here, one dict per message."""

    kernel = object()
    comm_id = "recording"

    def __init__(self) -> None:
        self.messages: list[dict] = []

    def send(self, data=None, buffers=None, **_kwargs) -> None:
        if data.get("method") == "update":
            self.messages.append(data["state"])

    def on_msg(self, _callback) -> None:
        pass


@pytest.mark.parametrize("action", ["load_similar", "random"])
def test_loaded_paper_reaches_the_view_with_its_text(widget, action):
    """The source line and the text arrive in one message, before the result: a view
    never draws the loaded paper's title over the previous text (a race seen in Chromium)."""
    widget.text = widget.text + " A sentence of our own."  # in no paper of the corpus
    other = widget.similar[0]["id"]
    comm = _RecordingComm()
    widget.comm = comm
    previous = widget.text
    send(widget, {"type": action, "id": other} if action == "load_similar" else {"type": action})
    assert widget.text != previous
    first = next(i for i, m in enumerate(comm.messages) if "source" in m)
    assert comm.messages[first]["text"] == widget.text
    assert comm.messages[first]["source"]["id"] == widget.source["id"]
    assert comm.messages[first]["busy"] is True
    later = comm.messages[first + 1 :]
    assert later and "spans" in later[-1] and later[-1]["busy"] is False
    assert all("text" not in m and "source" not in m for m in later)


def test_editing_text_forgets_the_source(widget):
    send(widget, {"type": "load_similar", "id": widget.similar[0]["id"]})
    assert widget.source
    widget.text = widget.text + " More words."
    assert widget.source == {}


def test_rename_topic_persists_with_the_model(synthetic_abstractor):
    path = synthetic_abstractor.path
    widget = AbstractorWidget(synthetic_abstractor)
    send(widget, {"type": "rename_topic", "topic": 2, "label": "  Protein   design "})
    assert widget.error == ""
    assert widget.topics[2]["label"] == "Protein design"
    assert Abstractor.load(path).topics[2]["label"] == "Protein design"
    assert Abstractor.load(path).widget().topics[2]["label"] == "Protein design"


HOSTILE_MESSAGES = [
    pytest.param(None, id="null"),
    pytest.param("random", id="string"),
    pytest.param(["random"], id="list"),
    pytest.param(42, id="number"),
    pytest.param({}, id="missing-type"),
    pytest.param({"type": 3}, id="type-not-string"),
    pytest.param({"type": ["random"]}, id="type-list"),
    pytest.param({"type": "drop_tables"}, id="unknown-type"),
    pytest.param({"type": HUGE}, id="huge-type"),
    pytest.param({"type": "load_similar"}, id="load-missing-id"),
    pytest.param({"type": "load_similar", "id": 2401}, id="load-id-number"),
    pytest.param({"type": "load_similar", "id": ""}, id="load-id-empty"),
    pytest.param({"type": "load_similar", "id": "9999.99999"}, id="load-unknown-id"),
    pytest.param({"type": "load_similar", "id": "../../etc/passwd"}, id="load-path-id"),
    pytest.param({"type": "load_similar", "id": HUGE}, id="load-huge-id"),
    pytest.param({"type": "rename_topic", "label": "x"}, id="rename-missing-topic"),
    pytest.param({"type": "rename_topic", "topic": "1", "label": "x"}, id="rename-topic-string"),
    pytest.param({"type": "rename_topic", "topic": True, "label": "x"}, id="rename-topic-bool"),
    pytest.param({"type": "rename_topic", "topic": 1.5, "label": "x"}, id="rename-topic-float"),
    pytest.param({"type": "rename_topic", "topic": -1, "label": "x"}, id="rename-topic-negative"),
    pytest.param({"type": "rename_topic", "topic": 10**30, "label": "x"}, id="rename-topic-too-big"),
    pytest.param({"type": "rename_topic", "topic": 1}, id="rename-missing-label"),
    pytest.param({"type": "rename_topic", "topic": 1, "label": None}, id="rename-label-null"),
    pytest.param({"type": "rename_topic", "topic": 1, "label": {"a": 1}}, id="rename-label-dict"),
    pytest.param({"type": "rename_topic", "topic": 1, "label": "   "}, id="rename-label-blank"),
    pytest.param({"type": "rename_topic", "topic": 1, "label": HUGE}, id="rename-label-huge"),
    pytest.param({"type": "rename_topic", "topic": 1, "label": "y" * (MAX_LABEL_CHARS + 1)}, id="rename-label-long"),
    pytest.param({"type": "rename_topic", "topic": 1, "label": "<script>alert(1)</script>"}, id="rename-script"),
    pytest.param({"type": "rename_topic", "topic": 1, "label": "<img src=x onerror=alert(1)>"}, id="rename-img"),
    pytest.param({"type": "rename_topic", "topic": 1, "label": "abc\u202edef"}, id="rename-bidi"),
    pytest.param({"type": "rename_topic", "topic": 1, "label": "a\x00b"}, id="rename-nul"),
]


@pytest.mark.parametrize("content", HOSTILE_MESSAGES)
def test_hostile_message_sets_error_and_changes_nothing(widget, content):
    before = {key: getattr(widget, key) for key in ("text", "topics", "similar", "spans", "source")}
    send(widget, content)  # must not raise
    assert widget.error
    assert len(widget.error) < 300  # readable, not an echo of the input
    assert "<script>" not in widget.error
    assert {key: getattr(widget, key) for key in before} == before
    assert widget.busy is False


def test_error_clears_after_a_good_action(widget):
    send(widget, {"type": "nope"})
    assert widget.error
    send(widget, {"type": "random"})
    assert widget.error == ""


def test_unexpected_exception_in_an_action_sets_error(widget, monkeypatch):
    def broken(seed=None):
        raise OSError("disk on fire")

    monkeypatch.setattr(widget.abstractor, "random_document", broken)
    send(widget, {"type": "random"})
    assert widget.error and "disk on fire" not in widget.error and widget.busy is False


def test_label_that_cannot_be_saved_sets_error(widget, monkeypatch):
    def read_only(topic, label):
        raise PermissionError("read-only artifact")

    monkeypatch.setattr(widget.abstractor, "label_topic", read_only)
    send(widget, {"type": "rename_topic", "topic": 0, "label": "Fine label"})
    assert "could not be saved" in widget.error and "artifact" not in widget.error


# ---------------------------------------------------------------------- browser state
def test_browser_text_update_answers_its_request(ab, widget, calls):
    other = ab.document("2401.00007").text
    widget.set_state({"text": other, "request_id": 7})
    assert calls == [(other, 3)]
    assert widget.result_id == 7
    assert covers(widget.spans, other)


def test_browser_text_and_n_in_one_update_analyse_once(ab, widget, calls):
    other = ab.document("2401.00008").text
    widget.set_state({"text": other, "n_similar": 6, "request_id": 1})
    assert calls == [(other, 6)]
    assert len(widget.similar) == 6


def test_unchanged_browser_text_still_answers_request(widget, calls):
    widget.set_state({"text": widget.text, "request_id": 11})
    assert calls == [] and widget.result_id == 11


HOSTILE_STATES = [
    pytest.param("not a dict", id="not-dict"),
    pytest.param(["text"], id="list"),
    pytest.param({"text": 123}, id="text-number"),
    pytest.param({"text": None}, id="text-null"),
    pytest.param({"text": HUGE}, id="text-10MB"),
    pytest.param({"n_similar": "ten"}, id="n-string"),
    pytest.param({"n_similar": None}, id="n-null"),
    pytest.param({"n_similar": True}, id="n-bool"),
    pytest.param({"highlight_topic": 10**6}, id="highlight-out-of-range"),
    pytest.param({"highlight_topic": -1}, id="highlight-negative"),
    pytest.param({"highlight_topic": "1"}, id="highlight-string"),
    pytest.param({"request_id": "x"}, id="request-id-string"),
    pytest.param({"method": "tfidf"}, id="method-unknown"),
    pytest.param({"method": 3}, id="method-number"),
    pytest.param({"methods": ["evil"]}, id="write-methods"),
    pytest.param({"spans": [{"text": "<b>pwned</b>", "topic": 0}]}, id="write-spans"),
    pytest.param({"topics": []}, id="write-topics"),
    pytest.param({"error": ""}, id="write-error"),
    pytest.param({"max_text_chars": 10**9}, id="write-limit"),
]


@pytest.mark.parametrize("state", HOSTILE_STATES)
def test_hostile_state_sets_error_and_keeps_kernel_state(widget, calls, state):
    before = {key: getattr(widget, key) for key in ("text", "spans", "topics", "similar", "highlight_topic", "max_text_chars")}
    widget.set_state(state)  # must not raise
    assert widget.error
    assert len(widget.error) < 300
    assert {key: getattr(widget, key) for key in before} == before
    assert calls == []


@pytest.mark.parametrize(("sent", "kept"), [(-3, 1), (0, 1), (99, 50)])
def test_out_of_range_n_from_browser_is_clamped_and_reported(widget, sent, kept):
    widget.set_state({"n_similar": sent, "request_id": 2})
    assert widget.n_similar == kept and len(widget.similar) == kept
    assert "between 1 and 50" in widget.error
    assert widget.result_id == 2


def test_partial_state_applies_the_good_keys(ab, widget):
    other = ab.document("2401.00009").text
    widget.set_state({"text": other, "spans": [], "request_id": 4})
    assert widget.text == other and covers(widget.spans, other)
    assert "spans" in widget.error


def test_browser_highlight(widget):
    widget.set_state({"highlight_topic": 1})
    assert widget.highlight_topic == 1 and widget.error == ""


# ---------------------------------------------------------------------- export / palette
def test_last_result_survives_html_export(widget):
    from ipywidgets.embed import embed_data

    data = embed_data(views=[widget])
    states = data["manager_state"]["state"]
    state = states[widget.model_id]["state"]
    assert state["spans"] == widget.spans
    assert state["similar"] == widget.similar
    assert state["topics"] == widget.topics


def test_palette_pairs_are_distinct_and_stable():
    pairs = [topic_style(k) for k in range(len(PALETTE) * len(PATTERNS))]
    assert len(set(pairs)) == len(pairs)
    assert topic_style(3) == topic_style(3) == (PALETTE[3], "solid")
    assert topic_style(len(PALETTE)) == (PALETTE[0], PATTERNS[1])
    assert all(c.startswith("#") and len(c) == 7 for c in PALETTE)


def test_read_only_labels_refuse_renames_from_the_browser(widget, ab):
    widget.editable_labels = False
    before = ab.model.labels_[0]
    widget._on_custom_msg(widget, {"type": "rename_topic", "topic": 0, "label": "Renamed"}, [])
    assert "read-only" in widget.error
    assert ab.model.labels_[0] == before
    # the browser may not flip the switch back
    widget.set_state({"editable_labels": True})
    assert widget.editable_labels is False


# ---------------------------------------------------------------------- ranking method
def test_methods_list_the_default_first(widget, ab):
    assert widget.methods == ["hybrid", "lexical", "lda"] and ab.default_method == "hybrid"
    assert widget.method == ""
    assert all(hit["shared_terms"] for hit in widget.similar)  # the hybrid explains by terms


@pytest.mark.parametrize("method", ["lda", "lexical", "hybrid"])
def test_method_from_python_recomputes_once_with_that_ranking(widget, ab, calls, method):
    widget.method = method
    assert calls == [(widget.text, 3, method)]
    expected = [h["id"] for h in ab.similar(widget.text, n=3, method=method)]
    assert [h["id"] for h in widget.similar] == expected
    assert all(bool(h["shared_terms"]) == (method != "lda") for h in widget.similar)


def test_method_from_the_browser_answers_its_request(widget, calls):
    widget.set_state({"method": "lda", "request_id": 9})
    assert calls == [(widget.text, 3, "lda")] and widget.result_id == 9 and widget.error == ""
    assert all(h["shared_terms"] == [] for h in widget.similar)


def test_method_in_the_constructor(ab, text):
    w = AbstractorWidget(ab, text=text, method="lexical")
    assert w.method == "lexical" and [h["id"] for h in w.similar] == [h["id"] for h in ab.similar(text, method="lexical")]
    with pytest.raises(t.TraitError, match="one of hybrid, lexical, lda"):
        AbstractorWidget(ab, text=text, method="bm25")


def test_model_without_lexical_index_offers_lda_only(synthetic_corpus, text):
    from abstractor_widgets import Abstractor

    ab = Abstractor.train(synthetic_corpus, 4, passes=2, progress=False, no_above=0.9, lexical=False)
    w = AbstractorWidget(ab, text=text)
    assert w.methods == ["lda"] and len(w.similar) == 5
    w.set_state({"method": "hybrid"})
    assert w.method == "" and "Ignored an invalid value for 'method'" in w.error


def test_unexpected_failures_show_no_exception_text(synthetic_abstractor, monkeypatch):
    """A visitor sees a short message; the exception (paths, internals) goes to the log only."""
    widget = AbstractorWidget(synthetic_abstractor)

    def broken(*args, **kwargs):
        raise RuntimeError("/srv/secret/path/model.npy exploded")

    monkeypatch.setattr(synthetic_abstractor, "analyze", broken)
    widget.text = "robot gripper torque"
    assert widget.error and "secret" not in widget.error and "exploded" not in widget.error
    monkeypatch.setattr(widget, "_handle_message", broken)
    widget._on_custom_msg(widget, {"type": "random"}, [])
    assert widget.error and "secret" not in widget.error and not widget.busy


def test_show_bounds_and_input_limit_come_from_python(widget):
    """The view reads the "Show n" bounds and the text limit from traits, not from constants of its own."""
    from abstractor_widgets.text import MAX_TEXT_CHARS as LIMIT

    state = widget.get_state()
    assert (state["n_similar_min"], state["n_similar_max"]) == (N_SIMILAR_MIN, N_SIMILAR_MAX)
    assert state["max_text_chars"] == LIMIT
    before = widget.n_similar_max
    widget.set_state({"n_similar_max": 10**6})  # a browser may not move the bounds
    assert widget.n_similar_max == before
