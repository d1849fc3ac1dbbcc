-- name: launchwatch_core_an0743_background_mining
-- mitre: AN0743
-- description: A process started by launchd (or init) that has averaged over half a core since it started, for at least 10 minutes, holds an external connection to a mining-pool port (core tables only: processes, process_open_sockets).
-- misses: CPU is the average over the process's whole life (a miner that throttles, or started long after its process, is diluted), not 1/5/15-minute windows; no Stratum recognition from the first payload, so a pool on port 443 is missed; no pool names (no DNS); no launchd label, schedule or Background process type (the parent being launchd stands in); only connections open when the query runs.
-- platform: darwin,linux
-- interval: 600
-- logging: differential
SELECT DISTINCT p.pid, p.path, p.name, s.remote_address, s.remote_port
FROM processes AS p
JOIN process_open_sockets AS s ON s.pid = p.pid
WHERE p.parent = 1
  AND p.start_time > 0
  AND CAST(strftime('%s', 'now') AS INTEGER) - p.start_time >= 600
  AND (p.user_time + p.system_time) / 1000.0
      >= 0.5 * (CAST(strftime('%s', 'now') AS INTEGER) - p.start_time)
  AND s.remote_port IN (3333, 3334, 4444, 5555, 6666, 7777, 8888, 9999, 14433, 14444, 45560, 45700)
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
