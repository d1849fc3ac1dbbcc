-- name: launchwatch_core_an1378_launchd_multi_channel
-- mitre: AN1378
-- description: The program of a third-party launchd job reached external destinations over two or more ports or protocols within one interval, the trace a switch to a fallback channel leaves (socket_events: needs osquery's audit socket events enabled, --audit_allow_sockets).
-- misses: Cannot tell that the primary channel went silent first (no beacon history), that the new destination is new to the program (no first-seen history), or that the host stayed online; a program that simply uses two services looks the same, so expect noise; no byte counts or DNS names; empty unless audit socket events are enabled.
-- platform: darwin
-- interval: 900
-- logging: differential
WITH channels AS (
  SELECT l.label, s.path, s.remote_address, s.remote_port, s.protocol
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
)
SELECT DISTINCT label, path, remote_address, remote_port, protocol
FROM channels
WHERE path IN (
  SELECT path FROM channels
  GROUP BY path
  HAVING count(DISTINCT remote_port) >= 2 OR count(DISTINCT protocol) >= 2
);
