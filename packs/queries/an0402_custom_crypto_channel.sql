-- name: launchwatch_an0402_custom_crypto_channel
-- mitre: AN0402
-- description: A periodic program that imports symmetric-crypto APIs talks on a port that is not a standard TLS/SSH/DNS/mail port. The randomized non-TLS payload half needs launchwatch_payloads (not built yet).
-- platform: darwin,linux
-- interval: 3600
-- logging: differential
SELECT b.identity, b.path, b.launchd_label, b.signer_class, b.remote, b.remote_port, ci.apis
FROM launchwatch_beacons AS b
JOIN launchwatch_crypto_imports AS ci ON ci.path = b.path
WHERE ci.symmetric_crypto = 1
  AND b.remote_port NOT IN (22, 53, 80, 443, 853, 993, 995, 5223, 8443)
  AND b.beacon_score >= 0.5
  AND b.allowlisted = 0;
