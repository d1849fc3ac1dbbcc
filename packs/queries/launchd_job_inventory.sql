-- name: launchwatch_launchd_job_inventory
-- mitre: none
-- description: Job inventory for AN1120 (not a detection): every launchd job (plists in launchd's directories and inside app bundles, and Background Task Management registrations where readable) with the stable facts that identify it: a row reaches the SIEM once when a job is created, changed (plist or program hash, schedule, class, signer) or removed. Recurring jobs have a schedule_kind of interval, calendar, keep_alive or launch_events.
-- platform: darwin
-- interval: 3600
-- logging: differential
SELECT label, path, domain, username, plist_sha256, program, program_sha256, program_cdhash,
       signer_class, schedule_kind, start_interval, calendar, period_seconds, keep_alive,
       job_class, masquerading, interpreter, user_writable, launchd_would_skip,
       btm_type, btm_disposition, team_id, developer_name
FROM launchwatch_launchd;
