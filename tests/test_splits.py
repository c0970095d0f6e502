"""Participant-level splits and the leakage check."""

from __future__ import annotations

import pytest

from bidsad.learn.splits import LeakageError, check_no_leakage, make_splits


def _ids(n):
    return [f"sub-{i:02d}" for i in range(n)]


def test_each_participant_tested_once_and_never_trained_on_in_its_fold():
    ids, labels = _ids(30), [i % 3 for i in range(30)]
    splits, warnings = make_splits(ids, labels, folds=5, seed=0)
    assert not warnings
    tested = splits[splits.role == "test"]
    assert sorted(tested.participant_id) == sorted(ids)
    for fold, rows in splits.groupby("fold"):
        train, test = set(rows[rows.role == "train"].participant_id), set(rows[rows.role == "test"].participant_id)
        assert not train & test and train | test == set(ids)
        assert len(test) == 6
        # stratified: two of each class in every test fold
        assert sorted(labels[ids.index(p)] for p in test) == [0, 0, 1, 1, 2, 2]


def test_seeded():
    ids, labels = _ids(12), [i % 2 for i in range(12)]
    a, _ = make_splits(ids, labels, 3, seed=1)
    b, _ = make_splits(ids, labels, 3, seed=1)
    c, _ = make_splits(ids, labels, 3, seed=2)
    assert a.equals(b) and not a.equals(c)


def test_folds_reduced_to_smallest_class():
    splits, warnings = make_splits(_ids(6), [0, 1, 2, 0, 1, 2], folds=5, seed=0)
    assert splits.fold.max() == 2 and "using 2 folds" in warnings[0]


def test_singleton_class_falls_back_to_unstratified():
    splits, warnings = make_splits(_ids(3), [0, 1, 2], folds=5, seed=0)
    assert splits.fold.max() == 3 and "unstratified" in warnings[0]
    assert (splits[splits.role == "test"].groupby("fold").size() == 1).all()


def test_single_class_is_an_error():
    with pytest.raises(ValueError, match="CN"):
        make_splits(_ids(4), [0, 0, 0, 0], folds=2, seed=0)


def test_too_few_is_an_error():
    with pytest.raises(ValueError, match="at least 2"):
        make_splits(_ids(1), [0], folds=2, seed=0)


def test_leakage_check_refuses_overlap():
    check_no_leakage(["sub-01", "sub-02"], ["sub-03"], 1)
    with pytest.raises(LeakageError, match="sub-02.*fold 4"):
        check_no_leakage(["sub-01", "sub-02"], ["sub-02", "sub-03"], 4)


def test_plan_splits_stratifies_each_sub_cohort_and_flags_unseen_classes():
    import pandas as pd

    from bidsad.learn.splits import plan_splits

    ids = _ids(12)
    included = pd.DataFrame({
        "participant_id": ids,
        "label": [i % 3 for i in range(12)],
        "mri": ["m"] * 12,
        "bold": ["b" if i < 6 else "" for i in range(12)],  # 6 with BOLD: two per class
    })
    splits, warnings = plan_splits(included, [("mri",), ("mri", "bold"), ("mri",)], folds=2, seed=0)
    assert sorted(set(splits.cohort)) == ["mri", "mri+bold"]
    fusion = splits[splits.cohort == "mri+bold"]
    assert set(fusion.participant_id) == set(ids[:6])
    for _, rows in fusion.groupby("fold"):
        test = rows[rows.role == "test"].participant_id
        assert sorted(int(p[-2:]) % 3 for p in test) == [0, 1, 2]
    assert not warnings
    # 3 participants with BOLD, one per class: unstratified folds, every fold's test class unseen in training
    included["bold"] = ["b" if i < 3 else "" for i in range(12)]
    splits, warnings = plan_splits(included, [("mri", "bold")], folds=5, seed=0)
    assert any("unstratified" in w for w in warnings)
    assert sum("have no participant in training" in w for w in warnings) == 3


def test_inner_validation_comes_from_training_participants_only():
    from bidsad.learn.splits import add_validation

    ids, labels = _ids(30), [i % 3 for i in range(30)]
    splits, _ = make_splits(ids, labels, folds=5, seed=0)
    with_val, warnings = add_validation(splits, dict(zip(ids, labels)), seed=0)
    assert not warnings
    assert with_val[with_val.role == "test"].equals(splits[splits.role == "test"])
    for fold, rows in with_val.groupby("fold"):
        val = rows[rows.role == "validation"].participant_id
        train = rows[rows.role == "train"].participant_id
        assert len(val) == 6 and len(train) == 18  # 24 training participants -> one fold's worth (6)
        assert sorted(labels[ids.index(p)] for p in val) == [0, 0, 1, 1, 2, 2]
        assert not set(val) & set(train) and not set(val) & set(rows[rows.role == "test"].participant_id)


def test_no_validation_when_training_classes_are_tiny():
    from bidsad.learn.splits import add_validation

    ids, labels = _ids(6), [0, 1, 2, 0, 1, 2]
    splits, _ = make_splits(ids, labels, folds=2, seed=0)
    with_val, warnings = add_validation(splits, dict(zip(ids, labels)), seed=0)
    assert with_val.equals(splits) and len(warnings) == 2 and "no inner validation" in warnings[0]
