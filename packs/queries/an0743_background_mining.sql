-- name: launchwatch_an0743_background_mining
-- mitre: AN0743
-- description: A background launchd job or daemon burns over half a core for 10+ minutes while mining: its connection opened with a Stratum (JSON-RPC mining) payload, or it reaches a common mining-pool port on a host whose name says pool, xmr, monero or mining. A name alone never counts (2.pool.ntp.org is time, not mining), NTP names never count, and the name comes from the flow or the latest DNS answer for the address. Cannot see: mining over TLS to an unnamed address on an ordinary port (443), or a pool reached through a proxy.
-- platform: darwin,linux
-- interval: 600
-- logging: differential
SELECT DISTINCT c.pid, c.path, c.launchd_label, c.parent_path, c.parent_name,
       s.remote_address, s.remote_port, s.remote_name,
       l.path AS plist, l.plist_sha256, l.username, l.program_arguments, l.program_sha256,
       g.cdhash AS program_cdhash
FROM launchwatch_process_cpu AS c
JOIN launchwatch_sockets AS s ON s.pid = c.pid AND s.process_start_time = c.start_time
LEFT JOIN launchwatch_launchd AS l ON l.label = c.launchd_label
LEFT JOIN launchwatch_signing AS g ON g.path = c.path
WHERE c.high_cpu_seconds >= 600
  AND c.launchd_label IS NOT NULL
  AND s.remote_scope = 'external'
  AND (EXISTS (SELECT 1 FROM launchwatch_payloads AS p
               WHERE p.pid = s.pid AND p.remote_address = s.remote_address
                 AND p.payload_class = 'stratum')
       OR (s.remote_port IN (3333, 3334, 4444, 5555, 6666, 7777, 8888, 9999, 14433, 14444, 45560, 45700)
           AND (s.remote_name LIKE '%pool%' OR s.remote_name LIKE '%xmr%'
                OR s.remote_name LIKE '%monero%' OR s.remote_name LIKE '%mining%')
           AND s.remote_name NOT LIKE '%ntp%'));
