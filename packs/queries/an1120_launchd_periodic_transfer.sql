-- name: launchwatch_an1120_launchd_periodic_transfer
-- mitre: AN1120
-- description: A launchd job (or systemd unit) contacts the same external destination on a timer, by new connections or inside one long-lived connection (checkin_kind): beacon_score >= 0.7 after the weaker of signer and job trust (job_class), novelty and launchd-schedule context; the job's whole process tree counts (label_source parent). Cannot see: check-ins inside one long-lived connection faster than two socket readings (10 s at the default socket_interval), or whose quiet stretches carry other traffic the program sends, fewer than 4 check-ins in the 24 h window (periods beyond 6–8 h), a program outside any launchd job's process tree, check-ins relayed by a proxy or another process (the relay is the program), or destinations rotated across registrable domains (one key per domain). Allowlist in /etc/launchwatch.toml [allowlist].
-- platform: darwin,linux
-- interval: 3600
-- logging: differential
SELECT b.identity, b.path, b.launchd_label, b.label_source, b.job_class, b.signer_class, b.remote,
       b.remote_port, b.protocol, b.checkin_kind, b.explained_by_launchd, b.job_file AS plist, l.plist_sha256,
       b.parent_path, b.parent_name,
       l.schedule_kind, l.user_writable, l.username, l.program_arguments, l.program_sha256,
       s.cdhash AS program_cdhash
FROM launchwatch_beacons AS b
LEFT JOIN launchwatch_launchd AS l ON l.label = b.launchd_label
LEFT JOIN launchwatch_signing AS s ON s.path = b.path
WHERE b.beacon_score >= 0.7
  AND b.launchd_label IS NOT NULL
  AND b.allowlisted = 0;
