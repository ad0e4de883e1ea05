"""Supervision's live figures: a faust-streaming app over wangge.cases for the big screen and Prometheus.

Run as its own process (`python -m services.supervision.live`). Its state (the cases it follows, the
hourly and spike windows) lives in faust tables kept in memory and backed by their changelog topics,
so a restarted process recovers it from Kafka; no PostgreSQL transaction is involved (DESIGN "Services").
"""

# The faust app's id without the topic prefix: it names the live figures' consumer group and begins the names of
# its tables' changelog topics (bench.support counts both).
APP_NAME = "wangge-supervision-live"
