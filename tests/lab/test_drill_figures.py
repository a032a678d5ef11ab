"""What a drill reports of the prober's calls: each API's outage, failed calls, longest gap and
slowest answer, and the servers asked for around the fault (part of `make test`)."""
from __future__ import annotations

import json
import threading
import time

import pytest

from lab import prober as prober_program
from lab.drill import (RECOVERY_CALLS, Prober, api_figures, failure_kind, host_busy,
                       server_figures)

FAULT = 100.0


def calls(*outcomes: tuple[float, bool], seconds: float = 0.1) -> list[dict]:
    return [{"t": t, "ok": ok, "seconds": seconds} for t, ok in outcomes]


def every_half_second(start: float, end: float, ok: bool) -> list[tuple[float, bool]]:
    return [(start + i * 0.5, ok) for i in range(int((end - start) / 0.5))]


def test_an_api_that_never_failed_had_no_outage():
    figures = api_figures(calls(*every_half_second(95, 110, True)), FAULT)
    assert figures["outage"] == 0.0 and figures["failed"] == 0
    assert figures["longest_gap"] == pytest.approx(0.5)
    assert figures["slowest"] == pytest.approx(0.1)


def test_the_outage_ends_at_the_first_of_a_run_of_passing_calls():
    seen = calls(*every_half_second(95, 100, True), *every_half_second(100, 112, False),
                 *every_half_second(112, 120, True))
    figures = api_figures(seen, FAULT)
    assert figures["outage"] == pytest.approx(12.0)
    assert figures["failed"] == 24
    # The last answer before the fault (99.5 + 0.1) to the first after it (112 + 0.1).
    assert figures["longest_gap"] == pytest.approx(12.5)


def test_a_short_run_of_passing_calls_does_not_end_the_outage():
    short = RECOVERY_CALLS - 1
    seen = calls(*every_half_second(95, 100, True), *every_half_second(100, 104, False),
                 *every_half_second(104, 104 + 0.5 * short, True),
                 *every_half_second(104 + 0.5 * short, 110, False),
                 *every_half_second(110, 115, True))
    figures = api_figures(seen, FAULT)
    assert figures["outage"] == pytest.approx(10.0)
    assert figures["failed"] == sum(1 for c in seen if not c["ok"]) == 16


def test_a_call_that_hung_across_the_fault_counts_as_failed():
    seen = [{"t": 99.0, "ok": True, "seconds": 0.1}, {"t": 99.5, "ok": False, "seconds": 2.0},
            *calls(*every_half_second(101.5, 105, True))]
    figures = api_figures(seen, FAULT)
    assert figures["failed"] == 1
    assert figures["outage"] == pytest.approx(1.5)
    assert figures["slowest"] == pytest.approx(0.1)


def test_an_api_never_back_has_no_outage_figure_and_its_gap_runs_to_its_last_call():
    seen = calls(*every_half_second(95, 100, True), *every_half_second(100, 130, False))
    figures = api_figures(seen, FAULT)
    assert figures["outage"] is None
    assert figures["slowest"] is None
    assert figures["longest_gap"] == pytest.approx(129.5 + 0.1 - 99.6)


def server(phase: str, t: float, status: str) -> dict:
    return {"probe": "server", "phase": phase, "t": t, "id": f"{phase}-{t}", "status": status}


def test_servers_asked_around_the_fault_that_end_active_are_not_stuck():
    events = [server("before", 99.0, "requested"), server("before", 104.0, "ACTIVE"),
              server("fault", 131.0, "ACTIVE")]
    assert server_figures(events, FAULT) == (31.0, 0)


def test_a_server_left_building_is_stuck():
    events = [server("before", 99.0, "requested"), server("before", 220.0, "BUILD"),
              server("fault", 110.0, "ACTIVE")]
    assert server_figures(events, FAULT) == (10.0, 1)


def test_a_server_in_error_asked_for_again_counts_from_the_fault_to_the_new_ones_active():
    events = [server("fault", 120.0, "ERROR"), server("fault", 140.0, "ACTIVE")]
    assert server_figures(events, FAULT) == (40.0, 0)


def test_a_server_never_asked_for_after_the_fault_is_stuck():
    assert server_figures([server("before", 99.0, "requested"),
                           server("before", 105.0, "ACTIVE")], FAULT) == (None, 1)


def prober_with(events: list[dict]) -> Prober:
    """A prober's bookkeeping over given events (no process)."""
    prober = Prober.__new__(Prober)
    prober.events = events
    prober.stopped_at = None
    prober.judged = None
    return prober


def answer(t: float, ok: bool, by: str) -> dict:
    return {"probe": "vip", "t": t, "ok": ok, "by": by}


def test_the_victims_probe_counts_from_the_fault_to_the_first_survivors_answer():
    prober = prober_with([answer(90, True, "victim"), answer(101, False, "timeout"),
                          answer(106.5, True, "survivor")])
    assert prober.first_survivor_answer("vip", FAULT, {"victim"}) == 6.5


def test_a_survivor_answering_throughout_counts_zero_and_after_a_failure_its_return():
    steady = prober_with([answer(90, True, "survivor")])
    assert steady.first_survivor_answer("vip", FAULT, {"victim"}) == 0.0
    failed = prober_with([answer(90, True, "survivor"), answer(103, False, "timeout"),
                          answer(109, True, "survivor")])
    assert failed.first_survivor_answer("vip", FAULT, {"victim"}) == 9.0
    never = prober_with([answer(90, True, "survivor"), answer(103, False, "timeout")])
    assert never.first_survivor_answer("vip", FAULT, {"victim"}) is None


def test_a_drill_waits_for_a_server_asked_for_again_after_an_error():
    answering = [{"probe": "api", "api": "keystone", "t": FAULT + i, "ok": True, "seconds": 0.1}
                 for i in range(RECOVERY_CALLS)]
    asked_again = [server("before", 99.0, "requested"), server("fault", 108.0, "ACTIVE"),
                   server("before", 160.0, "ERROR")]
    prober = prober_with(answering + asked_again)
    prober.apis = ["keystone"]
    assert not prober.apis_settled(FAULT)
    prober.events.append(server("before", 175.0, "ACTIVE"))
    assert prober.apis_settled(FAULT)
    assert server_figures(prober.events, FAULT) == (8.0, 0)


def test_a_call_in_flight_when_the_drill_stops_probing_is_not_counted():
    """The drill stops once every API answers; a call that ends after that (cut short by the
    stop, or still running) is not a measurement: it would read as an API never back."""
    passing = [{"probe": "api", "api": "keystone", "t": FAULT + i, "ok": True, "seconds": 0.1}
               for i in range(RECOVERY_CALLS)]
    in_flight = {"probe": "api", "api": "keystone", "t": FAULT + 5.5, "ok": False, "seconds": 2.0}
    prober = prober_with(passing + [in_flight])
    prober.apis = ["keystone"]
    prober.stopped_at = FAULT + 6.0
    assert prober.api_figures(FAULT)["keystone"]["outage"] == 0.0
    prober.stopped_at = FAULT + 8.0
    assert prober.api_figures(FAULT)["keystone"]["outage"] is None


def test_a_call_that_ends_after_the_drill_judged_every_api_back_is_not_counted():
    """The drill judges every API back, then stops the prober: a call in flight at the judgement
    that fails before the stop is not among what was judged (CI read keystone as never back)."""
    failed = {"probe": "api", "api": "keystone", "t": FAULT + 1, "ok": False, "seconds": 0.5}
    passing = [{"probe": "api", "api": "keystone", "t": FAULT + 2 + i, "ok": True, "seconds": 0.1}
               for i in range(RECOVERY_CALLS)]
    prober = prober_with([failed, *passing, server("fault", FAULT + 4, "ACTIVE")])
    prober.apis = ["keystone"]
    assert prober.apis_settled(FAULT)
    prober.events.append({"probe": "api", "api": "keystone", "t": FAULT + 5.5, "ok": False,
                          "seconds": 3.0})
    prober.stopped_at = FAULT + 9.0
    assert prober.api_figures(FAULT)["keystone"]["outage"] == 2.0


def test_calls_count_in_the_order_they_started():
    """The prober prints a call when it ends: a slow failed call printed after faster passing
    ones still counts where it started."""
    printed = [{"probe": "api", "api": "keystone", "t": FAULT + t, "ok": ok, "seconds": s}
               for t, ok, s in [(1, True, 0.1), (3, True, 0.1), (2, False, 2.0), (4, True, 0.1),
                                (5, True, 0.1), (6, True, 0.1), (7, True, 0.1)]]
    prober = prober_with(printed)
    assert [c["t"] - FAULT for c in prober.calls("keystone")] == [1, 2, 3, 4, 5, 6, 7]
    prober.apis = ["keystone"]
    assert prober.api_figures(FAULT)["keystone"]["outage"] == 3.0


def test_host_busy_is_judged_within_the_work_and_over_the_seconds_timed_out_calls_spanned():
    samples = [{"probe": "cpu", "t": float(t), "busy": busy}
               for t, busy in ((10, 0.2), (11, 0.3), (12, 1.0), (13, 0.97), (14, 0.4), (30, 1.0))]
    timed_out = {"probe": "api", "api": "keystone", "t": 11.5, "ok": False, "seconds": 2.0,
                 "error": "ConnectTimeout: Request to http://vip:5000/v3 timed out"}
    refused = {"probe": "api", "api": "keystone", "t": 10.5, "ok": False, "seconds": 0.01,
               "error": "CallFailed: GET /v3: HTTP 503"}
    prober = prober_with([*samples, timed_out, refused])
    prober.apis = ["keystone"]
    # The timed-out call spans 11.5-13.5: the seconds ending at 12, 13 and 14 (not the
    # refused call's, nor the sample after the work).
    assert host_busy(prober, 9.0, 20.0) == {
        "median": 0.4, "saturated_share": 0.4, "median_during_timeouts": 0.97}


def test_the_prober_reports_the_hosts_busy_share_each_second(capsys):
    stop = threading.Event()
    sampler = threading.Thread(target=prober_program.host_cpu, args=(stop,))
    sampler.start()
    time.sleep(2.5)
    stop.set()
    sampler.join()
    samples = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # About two (a loaded machine may wake the sampler late).
    assert samples and all(s["probe"] == "cpu" and 0 <= s["busy"] <= 1
                           for s in samples), samples


# What the prober recorded of failed calls over TLS: the kept-alive connection closed as it was
# reused (an EOF in the TLS protocol), a certificate refused, a refused connection, a 503.
PROVIDER = "/resource_providers/60d7d803-c20f-4cf9-a813-62f9c0753c8c"
CLOSED_OVER_TLS = (f"SSLError: SSL exception connecting to https://openstack.osha.internal:8778"
                   f"{PROVIDER}: HTTPSConnectionPool(host='openstack.osha.internal', port=8778): "
                   f"Max retries exceeded with url: {PROVIDER} (Caused by SSLError(SSLEOFError(8, "
                   f"'[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol "
                   f"(_ssl.c:1006)')))")
BAD_CERTIFICATE = ("SSLError: SSL exception connecting to https://vip:8778/: ... (Caused by "
                   "SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
                   "certificate verify failed: self-signed certificate (_ssl.c:1006)')))")


@pytest.mark.parametrize("error, kind", [
    ("ConnectTimeout: Request to https://vip:5000/v3/projects timed out", "timeouts"),
    ("ConnectFailure: Unable to establish connection to http://vip:9696/v2.0/security-groups: "
     "('Connection aborted.', RemoteDisconnected('Remote end closed connection'))", "closed"),
    (CLOSED_OVER_TLS, "closed"),
    (BAD_CERTIFICATE, "refused"),
    ("ConnectFailure: Unable to establish connection to https://vip:9292/v2/images: "
     "[Errno 111] Connection refused", "refused"),
    ("CallFailed: POST /v2.0/security-groups: HTTP 503", "refused"),
])
def test_a_failed_call_is_judged_by_how_the_connection_ended(error, kind):
    assert failure_kind(error) == kind


def test_the_prober_keeps_a_long_errors_cause():
    """The client's wrapper comes first and urllib3's cause last: a long error keeps both."""
    recorded = prober_program.brief(RuntimeError(CLOSED_OVER_TLS))
    assert recorded.startswith("RuntimeError: SSLError: SSL exception connecting to")
    assert recorded.endswith("EOF occurred in violation of protocol (_ssl.c:1006)')))")
    assert len(recorded) < len(CLOSED_OVER_TLS) and failure_kind(recorded) == "closed"
    assert prober_program.brief(ValueError("short")) == "ValueError: short"
