-- name: launchwatch_core_an1120_launchd_timer_egress
-- mitre: AN1120
-- description: A third-party launchd job with a StartInterval timer whose program holds an external connection right now (core tables only: launchd, processes, process_open_sockets).
-- misses: Only StartInterval timers (osquery's launchd table has no StartCalendarInterval), only connections open at the moment the query runs (a job that connects for a second every hour is almost never caught), no repeat timing, periodicity or beacon score, no byte counts, no history or novelty, no DNS names, no signer context; jobs are matched to processes by program path, not by launchd's own job state.
-- platform: darwin
-- interval: 300
-- logging: differential
SELECT DISTINCT l.label, l.path AS plist, l.start_interval, p.path, s.remote_address, s.remote_port, s.protocol
FROM launchd AS l
JOIN processes AS p
  ON p.path = l.program OR (coalesce(l.program, '') = '' AND substr(l.program_arguments, 1, length(p.path)) = p.path)
JOIN process_open_sockets AS s ON s.pid = p.pid
WHERE l.start_interval != ''
  AND l.path NOT LIKE '/System/%'
  AND s.remote_port != 0
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
