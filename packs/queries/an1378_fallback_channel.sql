-- name: launchwatch_an1378_fallback_channel
-- mitre: AN1378
-- description: An established beacon went silent while the host stayed online, and the same program turned to a destination or protocol new to it, up to a day later; the later the new channel, the lower the score (proximity halves every hour or fallback window), with no cutoff (score >= 0.6). Cannot see: a fallback to a destination the program already used before the silence, or one made by another program.
-- platform: darwin,linux
-- interval: 900
-- logging: differential
SELECT identity, path, launchd_label, primary_remote, fallback_remote, fallback_protocol
FROM launchwatch_fallbacks
WHERE score >= 0.6
  AND allowlisted = 0;
