-- name: launchwatch_an1378_fallback_channel
-- mitre: AN1378
-- description: An established beacon went silent while the host stayed online, and the same program turned to a destination or protocol new to it (score >= 0.6).
-- platform: darwin,linux
-- interval: 900
-- logging: differential
SELECT identity, path, launchd_label, primary_remote, fallback_remote, fallback_protocol
FROM launchwatch_fallbacks
WHERE score >= 0.6
  AND allowlisted = 0;
