-- name: launchwatch_core_an0082_unsigned_long_lived_egress
-- mitre: AN0082
-- description: A program not signed by Apple, running for an hour or more, holds an established external TCP connection; with differential logging the SIEM sees when each connection appears and goes, and so how long it lived (core tables only: processes, process_open_sockets, signature).
-- misses: No byte counts or upload ratio (core sockets have no counters), so "heavy" cannot be judged at all and "long-lived" only from the added/removed times in the log; no baseline against the program's own history; no developer_id / app_store / adhoc distinction beyond the authority string; connections shorter than the query interval are missed.
-- platform: darwin
-- interval: 900
-- logging: differential
SELECT DISTINCT p.pid, p.path, sig.team_identifier, sig.authority, s.local_port, s.remote_address, s.remote_port
FROM process_open_sockets AS s
JOIN processes AS p ON p.pid = s.pid
JOIN signature AS sig ON sig.path = p.path
WHERE s.protocol = 6
  AND s.state = 'ESTABLISHED'
  AND p.start_time > 0
  AND CAST(strftime('%s', 'now') AS INTEGER) - p.start_time >= 3600
  AND (sig.signed = 0 OR sig.authority != 'Software Signing')
  AND s.remote_address NOT IN ('', '0.0.0.0', '::', '::1')
  AND s.remote_address NOT LIKE '127.%' AND s.remote_address NOT LIKE '10.%'
  AND s.remote_address NOT LIKE '192.168.%' AND s.remote_address NOT LIKE '169.254.%'
  AND s.remote_address NOT GLOB '172.1[6-9].*' AND s.remote_address NOT GLOB '172.2[0-9].*'
  AND s.remote_address NOT GLOB '172.3[01].*' AND s.remote_address NOT GLOB '100.6[4-9].*'
  AND s.remote_address NOT GLOB '100.[7-9][0-9].*' AND s.remote_address NOT GLOB '100.1[01][0-9].*'
  AND s.remote_address NOT GLOB '100.12[0-7].*' AND s.remote_address NOT GLOB '22[4-9].*'
  AND s.remote_address NOT GLOB '23[0-9].*' AND s.remote_address NOT LIKE 'fe80:%'
  AND s.remote_address NOT LIKE 'fc%' AND s.remote_address NOT LIKE 'fd%'
  AND s.remote_address NOT LIKE 'ff%';
