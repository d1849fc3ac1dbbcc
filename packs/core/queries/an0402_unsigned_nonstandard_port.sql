-- name: launchwatch_core_an0402_unsigned_nonstandard_port
-- mitre: AN0402
-- description: A program not signed by Apple holds an external TCP connection on a port that is not a well-known TLS, HTTP, SSH, mail or DNS port, where a custom encrypted protocol would run (core tables only: processes, process_open_sockets, signature).
-- misses: Everything AN0402 is about: no symmetric-crypto API imports (core has no import table) and no first payload (no entropy, no TLS/SSH/QUIC recognition), so a custom channel on port 443 is invisible and any legitimate app on an odd port matches; only connections open when the query runs; no launchd label.
-- platform: darwin
-- interval: 3600
-- logging: differential
SELECT DISTINCT p.path, sig.signed, sig.team_identifier, sig.authority, s.remote_address, s.remote_port
FROM process_open_sockets AS s
JOIN processes AS p ON p.pid = s.pid
JOIN signature AS sig ON sig.path = p.path
WHERE s.protocol = 6
  AND s.state = 'ESTABLISHED'
  AND s.remote_port NOT IN (22, 25, 53, 80, 110, 143, 443, 465, 587, 853, 993, 995, 5223, 8080, 8443)
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
