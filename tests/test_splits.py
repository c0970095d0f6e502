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


def test_inner_validation_keeps_most_training_participants_with_few_folds():
    from bidsad.learn.splits import add_validation

    ids, labels = _ids(40), [i % 2 for i in range(40)]
    for folds, expected in ((2, 5), (3, 7), (5, 8), (10, 4)):  # 20, 26-27, 32, 36 training participants
        splits, _ = make_splits(ids, labels, folds=folds, seed=0)
        with_val, _ = add_validation(splits, dict(zip(ids, labels)), seed=0)
        for _, rows in with_val.groupby("fold"):
            n_val, n_train = (rows.role == "validation").sum(), (rows.role == "train").sum()
            assert abs(n_val - expected) <= 1 and n_val <= (n_val + n_train) / 4 + 0.5, (folds, n_val, n_train)


def test_no_validation_when_training_classes_are_tiny():
    from bidsad.learn.splits import add_validation

    ids, labels = _ids(6), [0, 1, 2, 0, 1, 2]
    splits, _ = make_splits(ids, labels, folds=2, seed=0)
    with_val, warnings = add_validation(splits, dict(zip(ids, labels)), seed=0)
    assert with_val.equals(splits) and len(warnings) == 2 and "no inner validation" in warnings[0]


def test_repeated_folds_reshuffle_and_test_everyone_once_per_repeat():
    ids, labels = _ids(18), [i % 3 for i in range(18)]
    splits, _ = make_splits(ids, labels, folds=3, seed=0, repeats=3)
    assert sorted(splits.repeat.unique()) == [1, 2, 3]
    tests = {}
    for repeat, rows in splits.groupby("repeat"):
        tested = rows[rows.role == "test"]
        assert sorted(tested.participant_id) == sorted(ids)  # each participant tested exactly once per repeat
        for _, fold in rows.groupby("fold"):
            assert not set(fold[fold.role == "train"].participant_id) & set(fold[fold.role == "test"].participant_id)
        tests[repeat] = {frozenset(f[f.role == "test"].participant_id) for _, f in rows.groupby("fold")}
    assert tests[1] != tests[2] and tests[2] != tests[3]  # a new shuffle per repeat
    first, _ = make_splits(ids, labels, folds=3, seed=0)
    assert first.drop(columns="repeat").equals(splits[splits.repeat == 1].drop(columns="repeat").reset_index(drop=True))


def test_paper_protocol_puts_copies_of_test_participants_in_training_and_says_so():
    from bidsad.learn.splits import make_paper_splits

    ids, labels = _ids(6), [i % 3 for i in range(6)]
    splits, warnings = make_paper_splits(ids, labels, folds=3, seed=0, copies=10)
    assert "LEAKS" in warnings[0]
    assert len(splits[splits.fold == 1]) == 66 and set(splits["copy"]) == set(range(11))
    leaked = 0
    for fold, rows in splits.groupby("fold"):
        train, test = set(rows[rows.role == "train"].participant_id), set(rows[rows.role == "test"].participant_id)
        leaked += len(train & test)
        if train & test:
            with pytest.raises(LeakageError):
                check_no_leakage(train, test, fold)
    assert leaked >= 6  # every participant's copies are spread over folds: the leak the paper had


def test_plan_splits_paper_protocol_is_flagged_first():
    import pandas as pd

    from bidsad.learn.splits import plan_splits

    included = pd.DataFrame({"participant_id": _ids(6), "label": [i % 3 for i in range(6)], "mri": ["m"] * 6,
                             "bold": [""] * 6})
    splits, warnings = plan_splits(included, [("mri",)], folds=2, seed=0, protocol="paper")
    assert "LEAKS" in warnings[0] and list(splits.columns) == ["cohort", "repeat", "fold", "participant_id", "copy", "role"]
    honest, warnings = plan_splits(included, [("mri",)], folds=2, seed=0, repeats=2)
    assert not any("LEAKS" in w for w in warnings) and (honest["copy"] == 0).all() and set(honest.repeat) == {1, 2}


def test_slice_protocol_puts_slices_of_one_participant_on_both_sides_and_the_participant_split_never():
    import pandas as pd

    from bidsad.learn.splits import SPLIT_PROTOCOLS, plan_splits

    assert "slice" in SPLIT_PROTOCOLS
    included = pd.DataFrame({"participant_id": _ids(12), "label": [i % 3 for i in range(12)], "mri": ["m"] * 12,
                             "bold": [""] * 12})
    slices = [10, 12, 13, 14, 15, 17]
    leaky, warnings = plan_splits(included, [("mri",)], folds=3, seed=0, protocol="slice", slices=slices)
    assert "LEAKS" in warnings[0] and "'slice'" in warnings[0]
    assert list(leaky.columns) == ["cohort", "repeat", "fold", "participant_id", "copy", "slice", "role"]
    assert len(leaky) == 3 * 12 * 6  # every fold lists every (participant, slice) sample once
    for _, rows in leaky.groupby("fold"):
        assert sorted(rows.groupby("participant_id")["slice"].apply(sorted).iloc[0]) == slices
    tested = leaky[leaky.role == "test"]
    assert len(tested) == 12 * 6 and not tested.duplicated(["participant_id", "slice"]).any()  # each slice tested once
    both = [len(set(r[r.role == "train"].participant_id) & set(r[r.role == "test"].participant_id))
            for _, r in leaky.groupby("fold")]
    assert min(both) >= 6  # in every fold, half the test participants or more have slices in training
    honest, warnings = plan_splits(included, [("mri",)], folds=3, seed=0)
    assert "slice" not in honest and not any("LEAKS" in w for w in warnings)
    for fold, rows in honest.groupby("fold"):
        check_no_leakage(rows[rows.role == "train"].participant_id, rows[rows.role == "test"].participant_id, fold)


def test_fold_design_and_its_words_follow_the_folds_made():
    """Whether the folds were stratified and how many had an inner validation split are read from the splits as made
    (metrics.json ``fold_design``), and said as they are."""
    import pandas as pd

    from bidsad.learn.folds import fold_design, folds_ran_text, stratification_text, validation_text
    from bidsad.learn.splits import add_validation

    ids, labels = _ids(30), [i % 3 for i in range(30)]
    splits, _ = add_validation(make_splits(ids, labels, folds=5, seed=0)[0], dict(zip(ids, labels)), seed=0)
    tiny_ids, tiny = _ids(3), [0, 1, 2]  # one per class: unstratified, never a validation split
    small, notes = make_splits(tiny_ids, tiny, folds=5, seed=0)
    small, _ = add_validation(small, dict(zip(tiny_ids, tiny)), seed=0)
    both = pd.concat([splits.assign(cohort="mri"), small.assign(cohort="mri+bold")], ignore_index=True)
    design = fold_design(both, dict(zip(ids, labels)))
    assert design == {"mri": {"folds": 5, "n_folds": 5, "validation_folds": 5, "stratified": True},
                      "mri+bold": {"folds": 3, "n_folds": 3, "validation_folds": 0, "stratified": False}}
    assert any("unstratified" in n for n in notes)
    assert stratification_text({"mri": design["mri"]}) == "stratified by diagnosis"
    assert stratification_text({"mri+bold": design["mri+bold"]}) == "not stratified: a class had a single participant"
    assert stratification_text(design) == ("stratified by diagnosis in mri, not in mri+bold "
                                           "(a class there had a single participant)")
    assert validation_text(True, {"mri": design["mri"]}) == "held out in all 5 folds"
    assert validation_text(True, {"mri+bold": design["mri+bold"]}).startswith("none: none of the 3 folds")
    assert validation_text(True, design).startswith("held out in 5 of 8 folds")
    assert validation_text(False, design).startswith("not used")
    assert folds_ran_text(["2", "3"], 5) == "folds 2 and 3 of 5" and folds_ran_text(["1", "2"], 2) is None
    assert folds_ran_text(["repeat-2_fold-1", "repeat-2_fold-3"], 6) == "2 of 6 folds (fold 1 of repeat 2, fold 3 of repeat 2)"
    assert folds_ran_text(["4"], 5) == "fold 4 of 5"
