"""The control API's status-side methods against real runc containers:
many waiters at once, resize and close_stdin as methods, kill to all
processes, subscribe's order, and a client that never reads its answers
(which must not block anyone else)."""
import socket
import threading
import time

from ctrtest.control import ControlClient, ControlError, api_socket_path
from ctrtest.wait import wait_for

from conftest import scaled

ERROR_UNSUPPORTED = -32005
ERROR_NOT_RUNNING = -32003


def client(m):
    return ControlClient(api_socket_path(m.bundle.path))


def run_container(env, args, **kw):
    m = env.monitor(args, **kw)
    m.run()
    with client(m) as c:
        wait_for(lambda: c.call("status")["state"] == "running", 5, "running")
    return m


def test_five_concurrent_waiters_all_get_the_exit_status(env, work):
    m = run_container(env, ["sh", "-c", "trap 'exit 23' TERM; while :; do sleep 0.1; done"])
    results = []
    lock = threading.Lock()

    def waiter():
        with client(m) as c:
            r = c.call("wait", timeout=30)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=waiter) for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # all five are waiting now
    with client(m) as c:
        assert c.call("kill", {"signal": "TERM"}) == {"signal": 15, "all": False}
    for t in threads:
        t.join(30)
    assert len(results) == 5
    for r in results:
        assert r == {"exit_code": 23, "signal": None, "timed_out": False, "oom": False}
    assert m.wait_exit_file() == "23"
    m.assert_clean_exit()


def test_wait_after_exit_answers_at_once_while_the_monitor_lingers(env):
    # A waiter that connects before the exit but asks after it still gets
    # the status (the monitor answers waiters before it closes the API).
    m = run_container(env, ["sh", "-c", "sleep 0.5; exit 4"])
    with client(m) as c:
        r = c.call("wait", timeout=20)
    assert r["exit_code"] == 4 and r["signal"] is None
    m.assert_clean_exit()


def test_resize_method_sets_the_terminal_size(env):
    m = run_container(env, ["sh", "-c", "while :; do stty size; sleep 0.2; done"],
                      terminal=True)
    with client(m) as c:
        c.call("resize", {"rows": 41, "cols": 99})
    m.wait_log_contains(b"41 99\r\n", timeout=10)
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file()
    m.assert_clean_exit()


def test_resize_without_terminal_is_unsupported(env):
    m = run_container(env, ["sleep", "100"])
    with client(m) as c:
        try:
            c.call("resize", {"rows": 10, "cols": 10})
            raise AssertionError("resize without -t succeeded")
        except ControlError as e:
            assert e.code == ERROR_UNSUPPORTED
            assert "has no terminal" in e.message
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file()
    m.assert_clean_exit()


def test_close_stdin_method_gives_cat_eof_and_emits_stdin_closed(env):
    m = run_container(env, ["sh", "-c", "cat; echo cat-done; exit 5"], stdin=True)
    with client(m) as ev:
        assert ev.call("subscribe")["subscribed"] is True
        with client(m) as c:
            c.call("close_stdin")
            try:
                c.call("close_stdin")
                raise AssertionError("second close_stdin succeeded")
            except ControlError as e:
                assert e.code == ERROR_UNSUPPORTED
            except (ConnectionError, EOFError, OSError):
                pass  # cat saw EOF and the monitor already exited: also refused
        types = []
        while "exited" not in types:
            types.append(ev.next_notification(15)["params"]["type"])
    assert types[0] == "stdin-closed", types
    assert m.wait_exit_file() == "5"
    assert b" stdout F cat-done\n" in m.log_bytes()
    m.assert_clean_exit()


def test_kill_all_reaches_every_process_of_the_container(env):
    # The init catches TERM (a handler, which children do not inherit, unlike
    # an ignored signal); its sleeping children die of it. Only if "all"
    # reached them does the init's second `wait` return at once: signalling
    # PID 1 alone would leave it waiting 100 s for them.
    m = run_container(env, ["sh", "-c",
                            "trap 'echo init-got-term' TERM; sleep 100 & sleep 100 & "
                            "wait; wait; exit 3"])
    with client(m) as c:
        wait_for(lambda: len(c.call("processes")["processes"]) == 3, 5, "3 procs")
        assert c.call("kill", {"signal": "TERM", "all": True}) == {"signal": 15, "all": True}
    assert m.wait_exit_file(15) == "3"
    assert b" stdout F init-got-term\n" in m.log_bytes()
    m.assert_clean_exit()


def test_kill_after_exit_is_not_running(env):
    m = run_container(env, ["sh", "-c", "read x"], stdin=True)
    with client(m) as c, client(m) as w:
        w.send("wait")
        c.call("close_stdin")
        time.sleep(0.3)
        try:
            c.call("kill", {"signal": 9})
        except ControlError as e:
            assert e.code == ERROR_NOT_RUNNING
        except (ConnectionError, OSError, EOFError):
            pass  # the monitor had already exited and closed: also right
    m.assert_clean_exit()


def test_subscribe_sees_created_started_exited_in_order(env):
    m = env.monitor(["sh", "-c", "exit 6"])
    m.create()
    with client(m) as ev:
        r = ev.call("subscribe")
        assert r["state"] == "created"
        env.runc.start(m.cid)
        seen = []
        while not seen or seen[-1]["type"] != "exited":
            seen.append(ev.next_notification(15)["params"])
    assert [e["type"] for e in seen] == ["started", "exited"]
    assert seen[-1]["exit_code"] == 6 and seen[-1]["id"] == m.cid
    m.assert_clean_exit()


def test_client_that_never_reads_is_dropped_and_others_are_served(env):
    m = run_container(env, ["sleep", "100"])
    path = api_socket_path(m.bundle.path)
    hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hog.connect(path)
    hog.setblocking(False)
    req = b'{"jsonrpc":"2.0","id":1,"method":"status"}\n' * 1000
    sent = 0
    dropped = False
    deadline = time.monotonic() + scaled(20)
    with client(m) as c:
        while time.monotonic() < deadline and not dropped:
            try:
                sent += hog.send(req)
            except BlockingIOError:
                # Our send buffer is full: the monitor is not reading us
                # while our unread answers pile up. Others still get their
                # answers (a monitor blocked on us would never answer).
                assert c.call("status")["state"] == "running"
                time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
        assert dropped, f"a client with {sent} bytes of unread answers was never dropped"
        assert c.call("status")["state"] == "running"
    hog.close()
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file()
    m.assert_clean_exit()
