-- name: launchwatch_an0082_unusual_egress
-- mitre: AN0082
-- description: Long-lived or heavy uploads by a program that Apple did not sign, against the program's own 7-day history, or an unsigned or ad-hoc program's first heavy upload to a destination it never used, which needs no history (egress_score >= 0.6). Cannot see: a signed program's upload that stays within its own hourly history, uploads through a proxy or another process (the proxy is the program), or an upload that a signed program makes on an implant's behalf.
-- platform: darwin,linux
-- interval: 3600
-- logging: differential
SELECT e.identity, e.path, e.signer_class, e.parent_path, e.parent_name, e.remote, e.remote_port, e.protocol,
       s.cdhash AS program_cdhash
FROM launchwatch_egress AS e
LEFT JOIN launchwatch_signing AS s ON s.path = e.path
WHERE e.egress_score >= 0.6
  AND e.signer_class != 'apple'
  AND e.allowlisted = 0;
