-- name: launchwatch_status_config
-- mitre: none
-- description: Which config launchwatch runs with and how much it silences: a row whenever the config file, its contents, its acceptance or the allowlist size changes, so every change of what is being silenced reaches the SIEM fleet-wide. config_rejected = 1 means the file was refused (see launchwatch_status.last_error) and no allowlist applies.
-- platform: darwin,linux
-- interval: 3600
-- logging: differential
SELECT version, config_path, config_sha256, config_rejected, allowlist_entries
FROM launchwatch_status;
