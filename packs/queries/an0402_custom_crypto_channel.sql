-- name: launchwatch_an0402_custom_crypto_channel
-- mitre: AN0402
-- description: A program that imports symmetric-crypto APIs opened a connection whose first payload is random-looking and not TLS, SSH, QUIC or another known protocol (length-fair entropy test, >= 32 bytes). Cannot see: first payloads on a live host unless capture is enabled ([capture], root, libpcap; recorded and replayed payloads always work), a program that carries its own cipher instead of importing symmetric-crypto APIs (statically linked or Go code), a channel wrapped in TLS, QUIC or HTTP, or first payloads under 32 bytes.
-- platform: darwin,linux
-- interval: 3600
-- logging: differential
SELECT DISTINCT p.path, p.parent_path, p.parent_name, p.protocol, p.remote_address, p.remote_port,
       ci.apis, ci.frameworks,
       s.cdhash AS program_cdhash
FROM launchwatch_payloads AS p
JOIN launchwatch_crypto_imports AS ci ON ci.path = p.path
LEFT JOIN launchwatch_signing AS s ON s.path = p.path
WHERE p.payload_class = 'random'
  AND ci.symmetric_crypto = 1
  AND p.allowlisted = 0;
