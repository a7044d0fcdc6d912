//! The persisted device key.

use std::os::unix::fs::PermissionsExt;

use clawbridge_gateway::{DeviceIdentity, FatalError, GatewayClient, GatewayConfig, GatewayError};
use tokio_util::sync::CancellationToken;

#[test]
fn the_key_file_is_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("device.key");
    let first = DeviceIdentity::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let second = DeviceIdentity::load_or_create(&path).unwrap();
    assert_eq!(first.id(), second.id());
    assert_eq!(first.public_key_b64(), second.public_key_b64());
    let other = DeviceIdentity::load_or_create(&dir.path().join("other.key")).unwrap();
    assert_ne!(first.id(), other.id());
}

#[test]
fn a_readable_key_file_is_refused_with_the_chmod_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.key");
    DeviceIdentity::load_or_create(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = DeviceIdentity::load_or_create(&path).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, GatewayError::DeviceKey { .. }));
    assert!(text.contains(&format!("chmod 600 {}", path.display())), "{text}");
}

#[test]
fn a_corrupt_key_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.key");
    std::fs::write(&path, "# header\nnot-base64!!\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = DeviceIdentity::load_or_create(&path).unwrap_err().to_string();
    assert!(text.contains(&path.display().to_string()) && text.contains("corrupt"), "{text}");

    std::fs::write(&path, "QUJD\n").unwrap(); // valid base64url, 3 bytes
    let text = DeviceIdentity::load_or_create(&path).unwrap_err().to_string();
    assert!(text.contains("32 bytes"), "{text}");
}

#[tokio::test]
async fn spawn_fails_early_on_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.key");
    std::fs::write(&path, "garbage").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = GatewayClient::spawn(GatewayConfig::new("ws://127.0.0.1:1", None, &path), CancellationToken::new())
        .unwrap_err();
    assert!(matches!(err, GatewayError::DeviceKey { .. }), "{err}");

    let err = GatewayClient::spawn(
        GatewayConfig::new("http://127.0.0.1:18789", None, dir.path().join("k2")),
        CancellationToken::new(),
    )
    .unwrap_err();
    assert!(matches!(err, GatewayError::Fatal(FatalError::InvalidUrl { .. })), "{err}");
}

#[test]
fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let err = GatewayClient::spawn(
        GatewayConfig::new("ws://127.0.0.1:1", None, dir.path().join("k")),
        CancellationToken::new(),
    )
    .unwrap_err();
    assert!(matches!(err, GatewayError::Io(_)), "{err}");
}
