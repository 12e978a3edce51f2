"""SQLite under kill -9: every commit and state write that returned survives, and the file stays sound.

A child process commits (or writes a state record) in a loop and prints each
number only after the call returned; the test SIGKILLs it at a random moment
(often in the middle of a write) and reopens the file. This proves crash durability of
the process, not of the machine: the page cache survives a kill -9, a power
cut does not (that part rests on ``synchronous=FULL`` and the fsyncs).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

from switchman.store import SqliteStore

# argv: path, author, count (0: forever). Documents are ~40 KiB a revision so
# that a commit spans many WAL pages and a kill can land inside one.
CHILD = """
import asyncio, sys
from switchman.store import ConflictError, SqliteStore

async def main(path, author, count):
    store = SqliteStore(path)
    head = await store.head()
    number = head.number if head else None
    done = 0
    while count == 0 or done < count:
        documents = [
            {"kind": "Cluster", "metadata": {"name": f"c{i}"}, "spec": {"n": number, "pad": author * 2000}}
            for i in range(20)
        ]
        try:
            revision = await store.commit(documents, author=author, message="loop", expected_head=number)
        except ConflictError:
            head = await store.head()
            number = head.number if head else None
            continue
        number = revision.number
        done += 1
        print(number, flush=True)
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def start_child(path: Path, author: str, count: int = 0) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(path), author, str(count), stdout=asyncio.subprocess.PIPE
    )


async def read_numbers(child: asyncio.subprocess.Process, into: list[int]) -> None:
    assert child.stdout is not None
    async for line in child.stdout:
        into.append(int(line))


def check_file(path: Path) -> int:
    """The file is sound and its numbers have no gap; returns the head."""
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        count, head = raw.execute("SELECT count(*), coalesce(max(number), 0) FROM revisions").fetchone()
    raw.close()
    assert count == head
    return int(head)


async def test_kill_9_loses_no_returned_commit(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    print(f"seed {seed}")  # shown by pytest on failure
    path = tmp_path / "store.db"
    printed: list[int] = []
    for _ in range(4):
        child = await start_child(path, "child")
        assert child.stdout is not None
        # Let it open the file and commit at least once, then kill it at a random moment.
        numbers = [int(await asyncio.wait_for(child.stdout.readline(), 60))]
        reader = asyncio.ensure_future(read_numbers(child, numbers))
        await asyncio.sleep(rng.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
        await asyncio.wait_for(reader, 10)  # what it printed before dying is still in the pipe
        printed.extend(numbers)

        head = check_file(path)
        assert numbers
        assert max(numbers) <= head

    store = SqliteStore(path)
    try:
        for number in printed:
            revision = await store.get(number)
            assert revision.summary.author == "child"
            assert len(revision.documents) == 20
        assert printed == sorted(set(printed))  # each restart went on from the head
    finally:
        await store.close()


async def test_two_processes_writing_one_file_never_share_a_number(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    each = 15
    children = [await start_child(path, author, each) for author in ("a", "b")]
    numbers: list[list[int]] = [[], []]
    async with asyncio.timeout(90):
        await asyncio.gather(*(read_numbers(c, n) for c, n in zip(children, numbers, strict=True)))
        assert [await c.wait() for c in children] == [0, 0]
    assert sorted(numbers[0] + numbers[1]) == list(range(1, 2 * each + 1))
    assert check_file(path) == 2 * each
    store = SqliteStore(path)
    try:
        for author, mine in zip(("a", "b"), numbers, strict=True):
            for number in mine:
                assert (await store.get(number)).summary.author == author
    finally:
        await store.close()


# argv: path. Writes one state record over and over, each write on the version
# the previous one returned; ~40 KiB a value, like the commits above.
STATE_CHILD = """
import asyncio, sys
from switchman.store import SqliteStore

async def main(path):
    store = SqliteStore(path)
    record = await store.get_state("rollouts/checkout")
    step, version = (record.value["step"], record.version) if record else (0, None)
    while True:
        step += 1
        value = {"step": step, "pad": "x" * 40000}
        record = await store.put_state("rollouts/checkout", value, expected_version=version)
        version = record.version
        print(step, flush=True)

asyncio.run(main(sys.argv[1]))
"""


async def test_kill_9_loses_no_returned_state_write(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    print(f"seed {seed}")
    path = tmp_path / "store.db"
    for _ in range(2):
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", STATE_CHILD, str(path), stdout=asyncio.subprocess.PIPE
        )
        assert child.stdout is not None
        steps = [int(await asyncio.wait_for(child.stdout.readline(), 60))]
        reader = asyncio.ensure_future(read_numbers(child, steps))
        await asyncio.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
        await asyncio.wait_for(reader, 10)

        check_file(path)
        store = SqliteStore(path)
        try:
            record = await store.get_state("rollouts/checkout")
        finally:
            await store.close()
        assert record is not None
        # Every printed step is in; at most the one being written when the kill came is too.
        assert max(steps) <= record.value["step"] <= max(steps) + 1, (steps[0], steps[-1], record.value["step"])
