import numpy as np

from tfkit.data.order import EpochOrder, epoch_batches


def test_an_epochs_order_depends_only_on_the_seed_and_the_epoch():
    order = EpochOrder(10, 4, seed=1)
    fresh = EpochOrder(10, 4, seed=1)  # a new process, which has run no epoch
    assert (order.indices(3) == fresh.indices(3)).all()
    assert sorted(order.indices(0)) == list(range(10))
    assert not (order.indices(0) == order.indices(1)).all()
    assert not (EpochOrder(10, 4, seed=2).indices(0) == order.indices(0)).all()


def test_a_resumed_epoch_starts_at_its_step_and_keeps_its_length():
    order = EpochOrder(10, 4, seed=1)
    order.epoch = 2
    whole = [list(batch) for batch in order.batch_indices()]
    assert [len(batch) for batch in whole] == [4, 4, 2] and order.steps_per_epoch == 3
    order.first_step = 1
    resumed = [list(batch) for batch in order.batch_indices()]
    assert resumed[:2] == whole[1:] and len(resumed) == 3  # the skipped batch comes last
    assert EpochOrder(10, 4, seed=1, drop_remainder=True).steps_per_epoch == 2


def test_the_pipeline_gathers_each_batch_and_declares_its_cardinality():
    x = np.arange(10, dtype="float32") * 10
    y = np.arange(10, dtype="int32")
    dataset = epoch_batches((x, y), 4, seed=0, map_fn=lambda batch: (batch[0] + 1, batch[1]))
    assert int(dataset.cardinality()) == 3
    order = dataset.epoch_order
    order.epoch = 5
    batches = list(dataset.as_numpy_iterator())
    expected = order.indices(5)
    assert (np.concatenate([b[1] for b in batches]) == expected).all()
    assert (np.concatenate([b[0] for b in batches]) == x[expected] + 1).all()
