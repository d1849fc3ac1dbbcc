-- name: launchwatch_an1378_fallback_channel
-- mitre: AN1378
-- description: An established beacon went silent while the host stayed online, and the same program turned to a destination or protocol new to it, up to a day later; the later the new channel, the lower the score (proximity halves every hour or fallback window), with no cutoff (score >= 0.6). Cannot see: a primary that never scored as an established beacon (beacon_score >= 0.7), a fallback to a destination the program already used before the silence, or one made by another program.
-- platform: darwin,linux
-- interval: 900
-- logging: differential
SELECT f.identity, f.path, f.launchd_label, f.primary_remote, f.fallback_remote, f.fallback_protocol,
       f.parent_path, f.parent_name,
       l.path AS plist, l.plist_sha256, l.username, l.program_arguments, l.program_sha256,
       s.cdhash AS program_cdhash
FROM launchwatch_fallbacks AS f
LEFT JOIN launchwatch_launchd AS l ON l.label = f.launchd_label
LEFT JOIN launchwatch_signing AS s ON s.path = f.path
WHERE f.score >= 0.6
  AND f.allowlisted = 0;
