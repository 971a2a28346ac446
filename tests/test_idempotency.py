"""A retried submission makes no twin: the ``Idempotency-Key`` header over real HTTP, with
the keys in the suite's Redis, and the command line's client through a connection that
loses the first answer."""

from __future__ import annotations

import io
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

SELFTEST = {"kind": "diagnostics.selftest", "params": {"steps": 2}}


def test_a_repeated_submission_answers_with_the_first_job(as_user):
    alice, bob = as_user["alice"], as_user["bob"]
    key = {"Idempotency-Key": "5b0e8a3c-1f7e-4a0b-9d55-0c6f3f1b2a10"}
    first = alice.post("/api/v1/jobs", json=SELFTEST, headers=key)
    again = alice.post("/api/v1/jobs", json=SELFTEST, headers=key)
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert alice.get("/api/v1/jobs").json()["total"] == 1
    # Another request under the same key is a conflict, not a second job.
    other = alice.post("/api/v1/jobs", json={**SELFTEST, "priority": 9}, headers=key)
    assert other.status_code == 409 and other.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert other.json()["error"]["details"]["fields"] == {"Idempotency-Key": "used for another request"}
    # Keys are each account's own.
    assert bob.post("/api/v1/jobs", json=SELFTEST, headers=key).status_code == 201
    # Without a key, each submission is a job of its own.
    assert alice.post("/api/v1/jobs", json=SELFTEST).status_code == 201
    assert alice.get("/api/v1/jobs").json()["total"] == 2


def test_a_repeated_batch_and_upload_answer_with_their_first_jobs(as_user):
    alice = as_user["alice"]
    batch = {"jobs": [SELFTEST, {"kind": "diagnostics.noop"}]}
    first = alice.post("/api/v1/batches", json=batch, headers={"Idempotency-Key": "batch-1"})
    again = alice.post("/api/v1/batches", json=batch, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert [j["id"] for j in again.json()["jobs"]] == [j["id"] for j in first.json()["jobs"]]

    def upload(content: bytes):
        return alice.post("/api/v1/jobs", headers={"Idempotency-Key": "upload-1"},
                          data={"kind": "diagnostics.selftest"}, files={"file": ("a.bin", io.BytesIO(content))})

    uploaded, repeated, changed = upload(b"abc"), upload(b"abc"), upload(b"abd")
    assert uploaded.status_code == 201 and repeated.status_code == 200
    assert repeated.json()["id"] == uploaded.json()["id"]
    assert changed.status_code == 409  # another file under the same key
    assert alice.get("/api/v1/jobs").json()["total"] == 3


def test_a_refused_first_request_frees_its_key_and_bad_keys_are_refused(as_user):
    alice = as_user["alice"]
    bad = alice.post("/api/v1/jobs", json={"kind": "diagnostics.selftest", "params": {"steps": 0}},
                     headers={"Idempotency-Key": "k-2"})
    assert bad.status_code == 400
    assert alice.post("/api/v1/jobs", json=SELFTEST, headers={"Idempotency-Key": "k-2"}).status_code == 201
    for key in ("a b", "x" * 256, "caf\u00e9".encode()):  # a space, too long, not ASCII
        answer = alice.post("/api/v1/jobs", json=SELFTEST, headers={"Idempotency-Key": key})
        assert answer.status_code == 400 and answer.json()["error"]["details"]["fields"] == {
            "Idempotency-Key": "1 to 255 visible ASCII characters"}
    assert alice.get("/api/v1/jobs").json()["total"] == 1


def test_simultaneous_repeats_make_one_job(as_user):
    alice = as_user["alice"]

    def send(_):
        return alice.post("/api/v1/jobs", json=SELFTEST, headers={"Idempotency-Key": "race"})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    assert {a.status_code for a in answers} <= {200, 201, 409}
    assert [a.status_code for a in answers].count(201) == 1
    assert {a.json()["id"] for a in answers if a.status_code in (200, 201)} == {
        next(a.json()["id"] for a in answers if a.status_code == 201)}
    assert alice.get("/api/v1/jobs").json()["total"] == 1


class LosesFirstAnswer:
    """A TCP proxy to ``target`` that forwards every request, but closes the first
    connection without passing its answer on: the server made the job, the client never
    heard."""

    def __init__(self, target: str):
        host, port = target.rsplit("//", 1)[1].split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._relay, args=(client, self.connections == 1), daemon=True).start()

    def _relay(self, client: socket.socket, lose_answer: bool) -> None:
        with client, socket.create_connection(self.target) as server:
            client.settimeout(1.0)
            server.settimeout(30)
            try:
                while chunk := client.recv(65536):  # the whole request (the client then waits)
                    server.sendall(chunk)
            except TimeoutError:
                pass
            answer = server.recv(65536)  # the server has made the job by now
            if not lose_answer:
                client.sendall(answer)
                while chunk := server.recv(65536):
                    client.sendall(chunk)

    def close(self) -> None:
        self.listener.close()


def test_the_command_lines_client_retries_a_lost_answer_without_a_twin(live_server, clean, tokens, as_user):
    from vitalq.client import Client

    proxy = LosesFirstAnswer(live_server)
    try:
        job = Client(proxy.url, tokens["alice"], timeout_s=30).submit("diagnostics.selftest", {"steps": 2})
    finally:
        proxy.close()
    assert proxy.connections >= 2  # the first answer was lost, and the request sent again
    listed = as_user["alice"].get("/api/v1/jobs").json()
    assert listed["total"] == 1 and listed["jobs"][0]["id"] == job["id"]
