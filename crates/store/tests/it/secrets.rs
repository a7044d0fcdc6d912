//! The master key and the blob format, without a database.

use clawbridge_store::StoreError;
use clawbridge_store::secrets::{KEY_FILE, MasterKey};
use proptest::prelude::*;
use std::os::unix::fs::PermissionsExt;

const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn bytes() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

fn config_message(result: clawbridge_store::Result<MasterKey>) -> String {
    match result {
        Err(StoreError::Config(message)) => message,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn env_key_accepts_hex_and_every_base64_flavour() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let dir = tempfile::tempdir().unwrap();
    // Bytes chosen so that the standard and URL-safe alphabets differ (`+/` vs `-_`).
    let raw: [u8; 32] = std::array::from_fn(|i| 0xf8 | (i as u8 & 7));
    let expected = MasterKey::from_bytes(raw).to_hex();
    let mut forms = vec![hex::encode(raw), hex::encode_upper(raw), format!("  {}\n", hex::encode(raw))];
    forms.extend([
        STANDARD.encode(raw),
        STANDARD_NO_PAD.encode(raw),
        URL_SAFE.encode(raw),
        URL_SAFE_NO_PAD.encode(raw),
    ]);
    assert!(forms[3].contains(['+', '/']) && forms[5].contains(['-', '_']), "the test covers both alphabets");
    for form in forms {
        let key = MasterKey::from_env_or_file(Some(&form), dir.path()).unwrap_or_else(|e| panic!("{form:?}: {e}"));
        assert_eq!(key.to_hex(), expected, "{form:?}");
    }
    assert!(!dir.path().join(KEY_FILE).exists(), "an env key never creates a key file");
}

#[test]
fn a_bad_env_key_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["secret", &HEX[..62], &format!("{HEX}00"), "zz".repeat(32).as_str(), "AAAA"] {
        let message = config_message(MasterKey::from_env_or_file(Some(bad), dir.path()));
        assert!(message.contains("CLAWBRIDGE_MASTER_KEY"), "{message}");
        assert!(message.contains("openssl rand -hex 32"), "{message}");
        assert!(!message.contains(bad), "the bad value is not echoed: {message}");
    }
}

#[test]
fn an_empty_env_key_counts_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    MasterKey::from_env_or_file(Some("  "), dir.path()).unwrap();
    assert!(dir.path().join(KEY_FILE).exists());
}

#[test]
fn the_key_file_is_created_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let first = MasterKey::from_env_or_file(None, &state).unwrap();
    let path = state.join(KEY_FILE);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim(), first.to_hex().as_str());

    let second = MasterKey::from_env_or_file(None, &state).unwrap();
    assert_eq!(first.to_hex(), second.to_hex());
    let blob = first.encrypt("n", b"v").unwrap();
    assert_eq!(second.decrypt("n", &blob).unwrap().as_slice(), b"v");
}

#[test]
fn processes_racing_to_create_the_key_file_agree() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| MasterKey::from_env_or_file(None, dir.path()).unwrap().to_hex().to_string()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE);
    std::fs::write(&path, HEX).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let message = config_message(MasterKey::from_env_or_file(None, dir.path()));
    assert!(message.contains(&format!("chmod 600 {}", path.display())), "{message}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(MasterKey::from_env_or_file(None, dir.path()).unwrap().to_hex().as_str(), HEX);
}

#[test]
fn a_malformed_key_file_is_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE);
    std::fs::write(&path, "not a key\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let message = config_message(MasterKey::from_env_or_file(None, dir.path()));
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("does not hold a key"), "{message}");
}

#[test]
fn an_unusable_state_dir_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let message = config_message(MasterKey::from_env_or_file(None, &blocker.join("state")));
    assert!(message.contains("CLAWBRIDGE_MASTER_KEY"), "{message}");
}

#[test]
fn debug_never_shows_the_key() {
    let key = MasterKey::from_bytes(bytes());
    let shown = format!("{key:?}");
    assert_eq!(shown, "MasterKey(***)");
}

#[test]
fn tampered_or_foreign_blobs_do_not_decrypt() {
    let key = MasterKey::from_bytes(bytes());
    let blob = key.encrypt("name", b"value").unwrap();
    assert_eq!(blob.len(), 1 + 24 + 5 + 16);
    for i in [0, 1, 30, blob.len() - 1] {
        let mut bad = blob.clone();
        bad[i] ^= 1;
        assert!(matches!(key.decrypt("name", &bad), Err(StoreError::Secret(_))), "flipped byte {i}");
    }
    assert!(matches!(key.decrypt("name", &blob[..20]), Err(StoreError::Secret(_))));
    assert!(matches!(key.decrypt("name", &[]), Err(StoreError::Secret(_))));
    let err = MasterKey::from_bytes([9; 32]).decrypt("name", &blob).unwrap_err();
    assert_eq!(err.to_string(), "secret store: cannot decrypt name: wrong CLAWBRIDGE_MASTER_KEY or master.key?");
    let mut v2 = blob.clone();
    v2[0] = 2;
    assert!(key.decrypt("name", &v2).unwrap_err().to_string().contains("unknown format version 2"));
}

proptest! {
    #[test]
    fn encryption_round_trips_and_binds_the_name(
        key in any::<[u8; 32]>(),
        name in ".{0,40}",
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let key = MasterKey::from_bytes(key);
        let blob = key.encrypt(&name, &plaintext).unwrap();
        let decrypted = key.decrypt(&name, &blob).unwrap();
        prop_assert_eq!(decrypted.as_slice(), plaintext.as_slice());
        let other_name = format!("{name}x");
        prop_assert!(key.decrypt(&other_name, &blob).is_err());
    }

    #[test]
    fn parsed_keys_round_trip_through_hex(key in any::<[u8; 32]>()) {
        let hex = MasterKey::from_bytes(key).to_hex();
        let parsed = MasterKey::parse(&hex).expect("hex parses");
        prop_assert_eq!(parsed.to_hex(), hex);
    }
}
