"""The review queue: contents and order with known answers, filters, control sample, decisions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drift.errors import ValidationError
from jobs.review.queue import ReviewKind, decide, progress, review_queue, undo
from storage import review as store
from storage.models import Label
from tests.jobs.review.data import T0, Pred, settings_for
from tests.jobs.review.data import store as store_rows

PREDS = [
    Pred("a", 1, 0.95),  # flagged confidently wrong (label dog)
    Pred("b", 2, 0.99),  # flagged outlier, score 0.5 -> 0.495
    Pred("c", 3, 0.50),  # low confidence
    Pred("d", 4, 0.97, device="high"),  # flagged outlier, score 2 -> 1.94
    Pred("e", 5, 0.92),  # confident, unlabelled: control only if its hash says so
    Pred("f", 30, 0.60, device="high"),  # low confidence
    Pred("g", 200, 0.40),  # low confidence, next week (2026-W46)
    Pred("h", 6, 0.30),  # low confidence but labelled: not queued
    Pred("i", 7, 0.96),  # flagged outlier, since labelled: not queued
]
FLAGS = [
    ("a", "confidently_wrong", None, "dog"),
    ("b", "confident_outlier", 0.5, None),
    ("d", "confident_outlier", 2.0, None),
    ("i", "confident_outlier", 3.0, None),
]
LABELS = [("a", "dog"), ("h", "cat"), ("i", "dog")]
NOW = T0 + timedelta(days=20)


@pytest.fixture
def seeded(database):
    settings = settings_for(database.url)
    store_rows(database.session_factory, PREDS, flags=FLAGS, labels=LABELS)
    return database.session_factory, settings


def ids(page) -> list[str]:
    return [i.prediction_id for i in page.items]


def test_the_queue_holds_flagged_and_unsure_predictions_by_expected_value(seeded):
    factory, settings = seeded
    page = review_queue(factory, settings, "pets", now=NOW)
    # d: 0.97*2, a: 0.95, f: 0.60, c: 0.50, b: 0.99*0.5, g: 0.40
    assert ids(page) == ["d", "a", "f", "c", "b", "g"]
    assert page.total == 6 and page.class_labels == ("cat", "dog", "other")
    first = page.items[0]
    assert first.kind == ReviewKind.CONFIDENT_OUTLIER and first.score == 2.0
    assert first.slice == {"device": "high"} and first.week == "2026-W45"
    assert first.ts == T0 + timedelta(hours=4) and first.model_version == 1
    wrong = page.items[1]
    assert wrong.kind == ReviewKind.CONFIDENTLY_WRONG and wrong.true_label == "dog"


def test_ties_go_to_the_newest(database):
    settings = settings_for(database.url)
    store_rows(database.session_factory, [Pred("old", 1, 0.5), Pred("new", 2, 0.5)])
    assert ids(review_queue(database.session_factory, settings, "pets", now=NOW)) == ["new", "old"]


def test_filters_by_week_kind_and_slice(seeded):
    factory, settings = seeded
    assert ids(review_queue(factory, settings, "pets", week="2026-W46", now=NOW)) == ["g"]
    low = review_queue(factory, settings, "pets", kind=ReviewKind.LOW_CONFIDENCE, now=NOW)
    assert ids(low) == ["f", "c", "g"]
    outliers = review_queue(factory, settings, "pets", kind=ReviewKind.CONFIDENT_OUTLIER, now=NOW)
    assert ids(outliers) == ["d", "b"]
    assert ids(review_queue(factory, settings, "pets", slice_=("device", "high"), now=NOW)) == ["d", "f"]
    with pytest.raises(ValidationError, match="device"):
        review_queue(factory, settings, "pets", slice_=("colour", "red"), now=NOW)
    with pytest.raises(ValidationError, match="ISO week"):
        review_queue(factory, settings, "pets", week="2026-45", now=NOW)


def test_pages(seeded):
    factory, settings = seeded
    pages = [review_queue(factory, settings, "pets", page=n, per_page=4, now=NOW) for n in range(3)]
    assert [ids(p) for p in pages] == [["d", "a", "f", "c"], ["b", "g"], []]
    assert pages[0].pages == 2


def test_the_control_sample_is_a_deterministic_hash_of_the_prediction_id(database):
    preds = [Pred(f"q{i:04d}", i / 100, 0.95) for i in range(400)]
    store_rows(database.session_factory, preds)
    settings = settings_for(database.url, control_share=0.25)
    page = review_queue(database.session_factory, settings, "pets", per_page=400, now=NOW)
    expected = {p.pid for p in preds if store.unit_hash(p.pid) < 0.25 * 2**32}
    assert {i.prediction_id for i in page.items} == expected
    assert {i.kind for i in page.items} == {ReviewKind.CONTROL}
    assert 70 < len(expected) < 130
    # another share chooses anew
    half = review_queue(database.session_factory, settings_for(database.url, control_share=0.5), "pets", now=NOW)
    assert half.total == sum(store.unit_hash(p.pid) < 0.5 * 2**32 for p in preds)


def labels_of(factory) -> dict[str, tuple[str, object]]:
    with factory() as s:
        return {r.prediction_id: (r.label, r.labelled_at) for r in s.query(Label)}


def test_decisions_become_labels_and_leave_the_queue(seeded):
    factory, settings = seeded
    assert decide(factory, settings, "pets", ["d", "c"], "dog", reviewer="ann", now=NOW) == 2
    assert decide(factory, settings, "pets", ["b"], None, reviewer="bob", now=NOW) == 1  # skip
    labels = labels_of(factory)
    assert labels["d"] == ("dog", NOW) and labels["c"] == ("dog", NOW)
    assert "b" not in labels
    assert ids(review_queue(factory, settings, "pets", now=NOW)) == ["a", "f", "g"]


def test_a_new_label_arriving_closes_an_unlabelled_item(seeded):
    factory, settings = seeded
    review_queue(factory, settings, "pets", now=NOW)
    with factory.begin() as s:
        s.add(Label(model_id=1, prediction_id="f", label="cat", labelled_at=NOW))
    assert "f" not in ids(review_queue(factory, settings, "pets", now=NOW))


def test_undo_restores_the_replaced_label(seeded):
    factory, settings = seeded
    before = labels_of(factory)["a"]
    decide(factory, settings, "pets", ["a"], "cat", reviewer="ann", now=NOW)
    decide(factory, settings, "pets", ["f"], "other", reviewer="ann", now=NOW + timedelta(seconds=5))
    decide(factory, settings, "pets", ["c"], None, reviewer="bob", now=NOW + timedelta(seconds=6))
    assert labels_of(factory)["a"] == ("cat", NOW)
    assert undo(factory, settings, "pets", reviewer="ann") == "f"
    assert "f" not in labels_of(factory)
    assert undo(factory, settings, "pets", reviewer="ann") == "a"
    assert labels_of(factory)["a"] == before
    assert undo(factory, settings, "pets", reviewer="ann") is None
    assert undo(factory, settings, "pets", reviewer="bob") == "c"
    assert ids(review_queue(factory, settings, "pets", now=NOW)) == ["d", "a", "f", "c", "b", "g"]


def test_decisions_are_validated_against_the_class_labels(seeded):
    factory, settings = seeded
    with pytest.raises(ValidationError, match="allowed: cat, dog, other"):
        decide(factory, settings, "pets", ["a"], "zebra", reviewer="ann", now=NOW)
    with pytest.raises(ValidationError, match="accept"):  # only a segmentation model's mask is accepted
        decide(factory, settings, "pets", ["a"], "accept", reviewer="ann", now=NOW)
    with pytest.raises(ValidationError, match="no prediction 'nope'"):
        decide(factory, settings, "pets", ["nope"], "cat", reviewer="ann", now=NOW)
    with pytest.raises(ValidationError, match="reviewer"):
        decide(factory, settings, "pets", ["a"], "cat", reviewer=" ", now=NOW)
    assert labels_of(factory)["a"][0] == "dog"


def test_a_newer_label_is_not_overwritten(seeded):
    factory, settings = seeded
    early = T0 + timedelta(days=1)  # before the stored label of "a"
    assert decide(factory, settings, "pets", ["a"], "cat", reviewer="ann", now=early) == 0
    assert labels_of(factory)["a"][0] == "dog"


def test_progress(seeded):
    factory, settings = seeded
    decide(factory, settings, "pets", ["d"], "cat", reviewer="ann", now=NOW)  # agrees (predicted cat)
    decide(factory, settings, "pets", ["a"], "dog", reviewer="ann", now=NOW + timedelta(seconds=30))
    decide(factory, settings, "pets", ["c"], None, reviewer="ann", now=NOW + timedelta(seconds=60))
    decide(factory, settings, "pets", ["f"], "cat", reviewer="ann", now=NOW + timedelta(hours=2))  # idle gap
    p = progress(factory, settings, "pets", now=NOW)
    assert (p.done, p.skipped, p.left) == (3, 1, 2)
    assert p.agreement == pytest.approx(2 / 3)
    # 3 intervals: 30 s, 30 s, and a 2-hour pause counted as 5 minutes
    assert p.per_minute == pytest.approx(3 / 6)
    later = progress(factory, settings, "pets", since=NOW + timedelta(hours=1), now=NOW)
    assert (later.done, later.skipped, later.per_minute, later.agreement) == (1, 0, None, 1.0)


def test_segmentation_masks_are_accepted_or_rejected(database):
    settings = settings_for(database.url, task="segmentation")
    preds = [Pred("m1", 1, 0.95, mask_uri="masks/m1.png"), Pred("m2", 2, 0.97, mask_uri="masks/m2.png")]
    flags = [("m1", "confidently_wrong", 0.2, "dog"), ("m2", "confidently_wrong", 0.3, "dog")]
    store_rows(database.session_factory, preds, flags=flags, task="segmentation")
    page = review_queue(database.session_factory, settings, "pets", now=NOW)
    assert page.task == "segmentation" and {i.kind for i in page.items} == {ReviewKind.MASK}
    assert page.items[0].mask_uri == "masks/m2.png"
    assert ids(review_queue(database.session_factory, settings, "pets", kind=ReviewKind.MASK, now=NOW)) == ["m2", "m1"]
    decide(database.session_factory, settings, "pets", ["m1"], "accept", reviewer="ann", now=NOW)
    decide(database.session_factory, settings, "pets", ["m2"], "reject", reviewer="ann", now=NOW)
    with database.session_factory() as s:
        stored = {r.prediction_id: (r.label, r.mask_uri) for r in s.query(Label)}
    assert stored == {"m1": ("cat", "masks/m1.png")}  # accepted: the predicted mask is the truth
    assert review_queue(database.session_factory, settings, "pets", now=NOW).total == 0
    p = progress(database.session_factory, settings, "pets", now=NOW)
    assert (p.done, p.agreement) == (2, 0.5)


def test_a_rejected_mask_waits_for_relabelling_in_the_export(database, tmp_path):
    import json

    from jobs.review.exchange import ID_PREFIX, export_queue

    settings = settings_for(database.url, task="segmentation")
    preds = [Pred("m1", 1, 0.95, mask_uri="masks/m1.png"), Pred("m2", 2, 0.97, mask_uri="masks/m2.png")]
    flags = [("m1", "confidently_wrong", 0.2, "dog"), ("m2", "confidently_wrong", 0.3, "dog")]
    store_rows(database.session_factory, preds, flags=flags, task="segmentation")
    decide(database.session_factory, settings, "pets", ["m1"], "accept", reviewer="ann", now=NOW)
    decide(database.session_factory, settings, "pets", ["m2"], "reject", reviewer="ann", now=NOW)
    out = tmp_path / "relabel.json"
    result = export_queue(database.session_factory, settings, "pets", "label-studio", out, kind=ReviewKind.RELABEL)
    tasks = json.loads(out.read_text())
    assert result.items == 1 and [t["data"][ID_PREFIX + "prediction_id"] for t in tasks] == ["m2"]
    undo(database.session_factory, settings, "pets", reviewer="ann")  # the reject taken back: nothing to redraw
    export_queue(database.session_factory, settings, "pets", "label-studio", out, kind=ReviewKind.RELABEL)
    assert json.loads(out.read_text()) == []
