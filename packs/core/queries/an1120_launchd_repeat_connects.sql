-- name: launchwatch_core_an1120_launchd_repeat_connects
-- mitre: AN1120
-- description: The program of a third-party launchd job connected to the same external address and port three or more times since the last run (socket_events: needs osquery's audit socket events enabled, --audit_allow_sockets).
-- misses: Connect counts only, no intervals between them (so no periodicity, jitter or beacon score), no byte counts, no DNS names (one destination behind many addresses counts as many), no history beyond the query interval, no signer context; socket_events is empty unless osquery's audit-based socket events are enabled, and matches jobs to connections by program path only.
-- platform: darwin
-- interval: 3600
-- logging: differential
SELECT l.label, l.path AS plist, s.path, s.remote_address, s.remote_port
FROM socket_events AS s
JOIN launchd AS l
  ON s.path = l.program OR (coalesce(l.program, '') = '' AND substr(l.program_arguments, 1, length(s.path)) = s.path)
WHERE s.action = 'connect'
  AND l.path NOT LIKE '/System/%'
  AND s.remote_address NOT IN ('', '0.0.0.0', '::', '::1')
  AND s.remote_address NOT LIKE '127.%' AND s.remote_address NOT LIKE '10.%'
  AND s.remote_address NOT LIKE '192.168.%' AND s.remote_address NOT LIKE '169.254.%'
  AND s.remote_address NOT GLOB '172.1[6-9].*' AND s.remote_address NOT GLOB '172.2[0-9].*'
  AND s.remote_address NOT GLOB '172.3[01].*' AND s.remote_address NOT GLOB '100.6[4-9].*'
  AND s.remote_address NOT GLOB '100.[7-9][0-9].*' AND s.remote_address NOT GLOB '100.1[01][0-9].*'
  AND s.remote_address NOT GLOB '100.12[0-7].*' AND s.remote_address NOT GLOB '22[4-9].*'
  AND s.remote_address NOT GLOB '23[0-9].*' AND s.remote_address NOT LIKE 'fe80:%'
  AND s.remote_address NOT LIKE 'fc%' AND s.remote_address NOT LIKE 'fd%'
  AND s.remote_address NOT LIKE 'ff%'
GROUP BY l.label, l.path, s.path, s.remote_address, s.remote_port
HAVING count(*) >= 3;
