"""maildir/queue.py: processes share a Maildir, each message delivered once, across crashes.

Crashes are real: child processes killed with SIGKILL. Races are forced: the test decides
where the child waits and what the other process does meanwhile.
"""

import fcntl
import logging
import multiprocessing
import os
import signal
import threading
import time

import pytest
from pyramid_mailer.message import Message

from kinto_emailer.outbox.maildir import files
from kinto_emailer.outbox.maildir.queue import PARTIAL_SUFFIX, TMP_MAX_AGE, MaildirQueue
from kinto_emailer.smtp.mime import render


# Fork: the child runs the code under test as a process of the server would, after a fork.
FORK = multiprocessing.get_context("fork")


def write_email(path, subject="s"):
    message = Message(subject=subject, sender="k@example.com", recipients=["a@b.c"], body="b")
    return files.write(str(path), render(message, "k@example.com"))


def names_in(*parts):
    path = os.path.join(*parts)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def opened(path):
    queue = MaildirQueue(str(path))
    queue.open()
    return queue


def kill(process):
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    assert process.exitcode == -signal.SIGKILL


def test_two_queues_claim_every_message_once(tmp_path):
    for _ in range(300):
        write_email(tmp_path)
    queues = [opened(tmp_path) for _ in range(3)]
    claims = [[] for _ in queues]

    def claim_all(queue, claimed):
        while batch := queue.claim(7):
            claimed += batch

    threads = [threading.Thread(target=claim_all, args=pair) for pair in zip(queues, claims)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = [os.path.basename(path) for claimed in claims for path in claimed]
    assert len(names) == len(set(names)) == 300


def test_the_claims_of_a_dead_process_go_back_to_new(tmp_path):
    write_email(tmp_path)
    dead, alive = opened(tmp_path), opened(tmp_path)
    assert len(dead.claim(10)) == 1
    assert alive.recover() == 0  # Its owner holds its lock.
    dead._lock_file.close()  # What the kernel does when a process dies.
    assert alive.recover() == 1
    assert len(alive.claim(10)) == 1


def test_half_a_rewrite_left_by_a_dead_process_is_not_given_back(tmp_path):
    write_email(tmp_path)
    dead, alive = opened(tmp_path), opened(tmp_path)
    [claimed] = dead.claim(10)
    with open(claimed + PARTIAL_SUFFIX, "wb") as f:
        f.write(b"X-Actually-From: k@example.com\r\n")  # Died while narrowing it.
    dead._lock_file.close()
    assert alive.recover() == 1
    assert names_in(tmp_path, "new") == [os.path.basename(claimed)]


def test_a_claim_directory_without_its_lock_file_is_given_back(tmp_path):
    # What the lock race left behind before it was closed: claims no lock points to.
    write_email(tmp_path)
    dead, alive = opened(tmp_path), opened(tmp_path)
    [claimed] = dead.claim(10)
    os.unlink(dead._lock_file.name)
    dead._lock_file.close()
    assert alive.recover() == 1
    assert names_in(tmp_path, "new") == [os.path.basename(claimed)]
    assert names_in(tmp_path, "claimed") == sorted(
        [os.path.basename(alive.claim_dir), os.path.basename(alive.claim_dir) + ".lock"]
    )


# Files in tmp/ left by a writer that died.


def _die_before_queueing(path):
    """Child: write an email and die (SIGKILL) between writing it in tmp/ and the rename."""
    os.rename = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
    write_email(path)


def left_in_tmp_by_a_dead_writer(path, age):
    """The name of a complete email a killed writer left in tmp/, made ``age`` seconds old."""
    before = set(names_in(path, "tmp"))
    child = FORK.Process(target=_die_before_queueing, args=(str(path),))
    child.start()
    child.join(10)
    assert child.exitcode == -signal.SIGKILL
    [name] = set(names_in(path, "tmp")) - before
    then = time.time() - age
    os.utime(os.path.join(path, "tmp", name), (then, then))
    return name


@pytest.mark.functional
def test_files_left_in_tmp_by_a_dead_writer_are_swept_once_old(tmp_path, caplog):
    files.ensure_maildir(str(tmp_path))
    old = left_in_tmp_by_a_dead_writer(tmp_path, TMP_MAX_AGE + 60)
    younger = left_in_tmp_by_a_dead_writer(tmp_path, TMP_MAX_AGE - 60)
    fresh = left_in_tmp_by_a_dead_writer(tmp_path, 0)
    queue = opened(tmp_path)
    with caplog.at_level(logging.WARNING, logger="kinto_emailer.maildir_queue"):
        assert queue.recover() == 0
    assert names_in(tmp_path, "tmp") == sorted([younger, fresh])
    assert names_in(tmp_path, "new") == []  # Never queued: not sent.
    [record] = caplog.records
    assert record.getMessage() == (
        f"Deleted {old} from {tmp_path}/tmp: unchanged for over 129600s, "
        "its writer died before queueing it"
    )


@pytest.mark.functional
def test_tmp_is_swept_at_most_once_an_hour(tmp_path):
    queue = opened(tmp_path)
    assert queue.recover() == 0
    old = left_in_tmp_by_a_dead_writer(tmp_path, TMP_MAX_AGE + 60)
    assert queue.recover() == 0
    assert names_in(tmp_path, "tmp") == [old]  # Swept at the next sweep, an hour later.
    assert queue.sweep_tmp() == [old]


# The lock race: a process opens its queue while another recovers the dead.


def _open_and_claim(path, conn):
    """Child: open a queue, waiting before its first flock until told; claim; wait to die."""
    real_flock = fcntl.flock
    waited = []

    def flock(file, operation):
        if not waited:
            waited.append(True)
            conn.send("lock file created")
            assert conn.recv() == "go on"
        return real_flock(file, operation)

    fcntl.flock = flock
    try:
        queue = opened(path)
        conn.send(("claimed", len(queue.claim(10))))
    except Exception as e:
        conn.send(("error", repr(e)))
    time.sleep(60)  # Killed by the test.


def start_opening(path):
    conn, child_conn = FORK.Pipe()
    child = FORK.Process(target=_open_and_claim, args=(str(path), child_conn))
    child.start()
    assert conn.poll(10) and conn.recv() == "lock file created"
    return child, conn


@pytest.mark.functional
def test_a_lock_file_recovered_before_it_was_locked_never_hides_claims(tmp_path):
    write_email(tmp_path)
    recoverer = opened(tmp_path)
    child, conn = start_opening(tmp_path)
    try:
        # Unlocked: it looks like a dead process's lock; the recoverer deletes it.
        assert recoverer.recover() == 0
        conn.send("go on")
        assert conn.poll(10) and conn.recv() == ("claimed", 1)
    finally:
        kill(child)
    assert recoverer.recover() == 1
    assert len(names_in(tmp_path, "new")) == 1


@pytest.mark.functional
def test_a_lock_file_held_by_a_recoverer_never_stops_a_process_from_starting(tmp_path):
    write_email(tmp_path)
    recoverer = opened(tmp_path)
    child, conn = start_opening(tmp_path)
    move_all = recoverer._move_all

    def move_all_while_the_child_locks(directory, target):
        # The recoverer holds the child's lock file: the child locks now.
        conn.send("go on")
        assert conn.poll(10) and conn.recv() == ("claimed", 1)
        return move_all(directory, target)

    recoverer._move_all = move_all_while_the_child_locks
    try:
        assert recoverer.recover() == 0
    finally:
        recoverer._move_all = move_all
        kill(child)
    assert recoverer.recover() == 1
    assert len(names_in(tmp_path, "new")) == 1
