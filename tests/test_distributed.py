"""DistContext: torchrun's environment, DistributedSampler-style sharding, collectives on a real gloo group."""

from __future__ import annotations

import math
import multiprocessing as mp
import os

import pytest
import torch
from _train_run import free_port
from torch.utils.data.distributed import DistributedSampler

from medseg.training.distributed import DistContext, parameter_digest, shard_indices


@pytest.mark.parametrize("n,world", [(1, 2), (5, 2), (8, 2), (10, 3), (7, 4), (3, 5)])
def test_shards_cover_every_index_once_up_to_padding(n, world):
    indices = [100 + 3 * i for i in range(n)]  # not 0..n-1: shards must return the caller's indices
    shards = [shard_indices(indices, r, world, epoch=2, seed=7) for r in range(world)]
    per_rank = math.ceil(n / world)
    assert all(len(s) == per_rank for s in shards)  # equal steps on every rank, or a collective hangs
    flat = [i for s in shards for i in s]
    assert set(flat) == set(indices)
    assert len(flat) - n == per_rank * world - n  # only the padding repeats
    # the ranks interleave one permutation: rank r holds positions r, r + world, ...
    perm = [shards[k % world][k // world] for k in range(per_rank * world)]
    assert sorted(perm[:n]) == sorted(indices)


def test_shards_match_torch_distributed_sampler():
    n, world = 11, 3
    indices = list(range(50, 50 + n))
    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=4)
        sampler.set_epoch(3)
        expected = [indices[i] for i in sampler]
        assert shard_indices(indices, rank, world, epoch=3, seed=4) == expected


def test_shards_are_deterministic_per_epoch_and_change_between_epochs():
    indices = list(range(40))
    a = shard_indices(indices, 1, 2, epoch=5, seed=0)
    assert a == shard_indices(indices, 1, 2, epoch=5, seed=0)
    assert a != shard_indices(indices, 1, 2, epoch=6, seed=0)
    assert a != shard_indices(indices, 1, 2, epoch=5, seed=1)
    assert shard_indices(indices, 0, 2, epoch=0, seed=0, shuffle=False) == indices[0::2]
    assert shard_indices([], 0, 2, epoch=0, seed=0) == []
    with pytest.raises(ValueError, match="outside"):
        shard_indices(indices, 2, 2, epoch=0, seed=0)


def _env(**kw):
    base = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29555"}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def test_from_env_reads_torchrun_variables():
    assert DistContext.from_env(env={}) is None
    assert DistContext.from_env(env=_env(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0")) is None
    ctx = DistContext.from_env("cpu", env=_env(), init=False)
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.backend, ctx.device) == (1, 2, 1, "gloo", "cpu")
    assert not ctx.is_main
    assert ctx.shard(list(range(6)), 0, 0) == shard_indices(list(range(6)), 1, 2, 0, 0)
    with pytest.raises(ValueError, match="MASTER_PORT"):
        DistContext.from_env("cpu", env=_env(MASTER_PORT=None), init=False)
    with pytest.raises(ValueError, match="RANK=2 is outside"):
        DistContext.from_env("cpu", env=_env(RANK="2"), init=False)
    with pytest.raises(ValueError, match="device 'tpu'"):
        DistContext.from_env("tpu", env=_env(), init=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            DistContext.from_env("cuda", env=_env(), init=False)
        assert DistContext.from_env("auto", env=_env(), init=False).backend == "gloo"


def test_parameter_digest_sees_every_parameter_but_not_buffers():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    d = parameter_digest(net)
    net[1].running_mean += 1.0
    assert parameter_digest(net) == d
    with torch.no_grad():
        net[0].bias[1] += 1e-6
    assert parameter_digest(net) != d


def _collectives_worker(rank: int, port: int, queue) -> None:
    torch.set_num_threads(1)
    env = {
        "RANK": str(rank),
        "WORLD_SIZE": "2",
        "LOCAL_RANK": str(rank),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    os.environ.update(env)
    ctx = DistContext.from_env("cpu")
    try:
        t = torch.tensor([float(rank), 10.0 * rank])
        ctx.all_reduce_mean(t)
        ctx.barrier()
        anyflag = ctx.any(rank == 1)
        noflag = ctx.any(False)
        obj = ctx.broadcast_object({"stop": rank == 0, "from": rank})
        queue.put((rank, t.tolist(), anyflag, noflag, obj))
    finally:
        ctx.cleanup()


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_collectives_on_a_real_two_process_gloo_group():
    # fork: the children inherit the imported torch, so this costs no interpreter start-up
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_collectives_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    for _rank, mean, anyflag, noflag, obj in results:
        assert mean == [0.5, 5.0]
        assert anyflag is True and noflag is False
        assert obj == {"stop": True, "from": 0}


@pytest.mark.skipif(os.name == "nt", reason="torchrun with gloo over loopback is exercised on POSIX")
def test_torchrun_two_gloo_ranks_train_identical_weights_with_one_event_stream(tmp_path):
    import json
    import subprocess
    import sys

    from _train_run import child_env, make_dataset, tiny_config, write_config

    from medseg.models import load_checkpoint
    from medseg.training.events import read_event as event_from_dict

    data = make_dataset(tmp_path / "data", n=12)
    cfg = write_config(tmp_path / "c.yaml", tiny_config(data, tmp_path / "run", epochs=2))
    digests = tmp_path / "digests"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--nnodes",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "medseg.cli",
        "train",
        str(cfg),
        "--events",
        "jsonl",
        "--weights-digest",
        str(digests),
    ]
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240, env=child_env())
    assert run.returncode == 0, run.stderr[-4000:]
    events = [event_from_dict(json.loads(line)) for line in run.stdout.splitlines()]  # nothing but events
    kinds = [e.kind for e in events]
    assert kinds.count("started") == 1 and kinds.count("result") == 1 and kinds[-1] == "result"
    steps = [e.global_step for e in events if e.kind == "step"]
    assert steps and len(steps) == len(set(steps))  # one rank reports; two would repeat every step
    rank0, rank1 = ((digests / f"rank{r}.sha256").read_text().strip() for r in (0, 1))
    assert rank0 == rank1
    saved = load_checkpoint(events[-1].value.last_checkpoint).model
    assert parameter_digest(saved) == rank0  # the checkpoint rank 0 wrote is the replicas' final state
