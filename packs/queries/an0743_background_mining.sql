-- name: launchwatch_an0743_background_mining
-- mitre: AN0743
-- description: A background launchd job or daemon burns over half a core for 10+ minutes while talking Stratum (first payload), or to a mining-pool port or pool name.
-- platform: darwin,linux
-- interval: 600
-- logging: differential
SELECT DISTINCT c.pid, c.path, c.launchd_label, s.remote_address, s.remote_port, s.remote_name
FROM launchwatch_process_cpu AS c
JOIN launchwatch_sockets AS s ON s.pid = c.pid AND s.process_start_time = c.start_time
WHERE c.high_cpu_seconds >= 600
  AND c.launchd_label IS NOT NULL
  AND s.remote_scope = 'external'
  AND (s.pid IN (SELECT pid FROM launchwatch_payloads WHERE payload_class = 'stratum')
       OR s.remote_port IN (3333, 3334, 4444, 5555, 6666, 7777, 8888, 9999, 14433, 14444, 45560, 45700)
       OR s.remote_name LIKE '%pool%' OR s.remote_name LIKE '%xmr%' OR s.remote_name LIKE '%mining%');
