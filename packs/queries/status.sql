-- name: launchwatch_status
-- mitre: none
-- description: The extension's own health, for fleet-wide monitoring of launchwatch itself.
-- platform: darwin,linux
-- interval: 3600
-- logging: snapshot
SELECT version, uptime_seconds, samples, sample_cost_ms, observations_stored, store_bytes, errors
FROM launchwatch_status;
