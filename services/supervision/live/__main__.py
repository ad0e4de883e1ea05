"""`python -m services.supervision.live`: the live figures process of supervision (faust-streaming)."""
from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from shared import self_restart
from shared.logs import configure_logging
from shared.serve import refused_unsafe, server_options
from shared.settings import get_settings
from shared.street import StreetDataError
from services.supervision.live.bootstrap import build
from services.supervision.live.streams import LiveOptions

DEFAULT_PORT = 8105


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, then serve the live figures until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m services.supervision.live",
        description="Supervision's live figures (实时数据) for the big screen and Prometheus: a faust-streaming app that "
        "follows wangge.cases (consumer group <prefix>wangge-supervision-live) and keeps, in memory backed by its "
        "changelog topics (recovered after a restart), the cases open and overdue now, the cases accepted per unit "
        "grid per hour, and categories spiking in a community. Serves GET /healthz, /readyz, /metrics, "
        "/api/v1/live/figures and /api/v1/live/events (server-sent events; operator or admin credential) on "
        "127.0.0.1. Kafka, PostgreSQL and the street come from the WANGGE_* settings like every service.",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("WANGGE_LIVE_PORT", DEFAULT_PORT)),
                        help=f"HTTP port (default: WANGGE_LIVE_PORT, else {DEFAULT_PORT})")
    parser.add_argument("--spike-threshold", type=int,
                        default=int(os.environ.get("WANGGE_LIVE_SPIKE_THRESHOLD", LiveOptions.spike_threshold)),
                        help="cases of one category in one community within one window that make a spike "
                             f"(default: WANGGE_LIVE_SPIKE_THRESHOLD, else {LiveOptions.spike_threshold})")
    parser.add_argument("--spike-window", type=float, default=float(os.environ.get(
                            "WANGGE_LIVE_SPIKE_WINDOW_SECONDS", LiveOptions.spike_window_seconds)),
                        help="length of a spike window in seconds (tumbling; default: WANGGE_LIVE_SPIKE_WINDOW_SECONDS, "
                             f"else {LiveOptions.spike_window_seconds:.0f})")
    args = parser.parse_args(argv)
    if args.spike_threshold < 1 or args.spike_window <= 0:
        parser.error("--spike-threshold must be at least 1 and --spike-window positive")
    # Several live instances share the tables' partitions; each finds the others at the URL they advertise in faust's
    # group assignment (share.py). Locally 127.0.0.1 and the port; in a cluster the pod's address.
    advertised = os.environ.get("WANGGE_LIVE_ADVERTISED_URL") or f"http://127.0.0.1:{args.port}"
    options = LiveOptions(spike_window_seconds=args.spike_window, spike_threshold=args.spike_threshold,
                          advertised_url=advertised)

    # faust and mode narrate every start-up step at INFO (tables, partitions, highwaters): warnings are enough.
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    settings = get_settings()
    if refused_unsafe(settings, "supervision", name="supervision-live"):
        return 2
    try:
        live = build(settings, options=options)
    except StreetDataError as exc:
        print(f"supervision-live: cannot read the street's data: {exc}", file=sys.stderr)
        return 1
    configure_logging("supervision-live", settings.log_level)
    # The screens' event streams never end by themselves: on SIGTERM they get 3 s, then they are closed.
    self_restart.watch("supervision-live", live.app.state.runtime.problem, settings.self_restart_seconds)
    uvicorn.run(live.app, **server_options(settings, args.port, graceful_seconds=3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
