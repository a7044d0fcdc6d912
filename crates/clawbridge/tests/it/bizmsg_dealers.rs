//! The template and image features of Solapi and Infobip through the binary, against the
//! testkit's fakes: `alimtalk templates sync` / `list` (Solapi's AlimTalk templates with their
//! review status and variables, Infobip's Brand Message templates; both cached for the sends'
//! checks), and `brand send --image` (Solapi: a file uploaded once as a `BMS` file, its `fileId`
//! in the send; Infobip: a URL as it is, a file refused). There is no `brand templates` command:
//! `alimtalk templates sync` syncs both products.

use clawbridge::pipeline::bizmsg::BizmsgWorker;
use clawbridge_bizmsg::client::DealerClient;
use clawbridge_bizmsg::config::BizmsgConfig;
use clawbridge_core::clock::ManualClock;
use clawbridge_core::retry::RetryPolicy;
use clawbridge_store::{BizmsgState, SharedStore};
use clawbridge_testkit::fake_infobip::{FakeInfobip, brand_template};
use clawbridge_testkit::fake_solapi::{FakeSolapi, template};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

/// A state directory with `clawbridge.toml`, and the environment pointing at a fake dealer.
struct Cli {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    file: String,
}

impl Cli {
    fn new(dealer_env: Vec<(&'static str, String)>, file: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clawbridge.toml"), file).unwrap();
        let mut env: Vec<(String, String)> = dealer_env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        env.push(("CLAWBRIDGE_CONFIG".into(), dir.path().join("clawbridge.toml").display().to_string()));
        Self { dir, env, file: file.to_owned() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the binary (on a blocking thread: the fake answers on this runtime).
    async fn run(&self, args: &[&str]) -> Output {
        let (dir, env) = (self.dir.path().to_owned(), self.env.clone());
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || clawbridge(&dir, &env, &args)).await.unwrap()
    }

    async fn store(&self) -> SharedStore {
        clawbridge_store::open(&format!("sqlite://{}", self.path("clawbridge.db").display())).await.unwrap()
    }

    /// The daemon's worker on this configuration, at `now`.
    fn worker(&self, store: &SharedStore, dealer_env: Vec<(&'static str, String)>, now: i64) -> BizmsgWorker {
        let vars: BTreeMap<&str, String> = dealer_env.into_iter().collect();
        let file: toml::Table = toml::from_str(&self.file).unwrap();
        let table = file.get("bizmsg").and_then(toml::Value::as_table);
        let config = Arc::new(BizmsgConfig::load(table, &|name| vars.get(name).cloned()).unwrap().unwrap());
        BizmsgWorker {
            store: store.clone(),
            client: DealerClient::new(&config, Duration::from_secs(5)).unwrap(),
            config,
            retry: RetryPolicy::DURABLE,
            worker: "w1".into(),
            wake: Arc::default(),
            clock: Arc::new(ManualClock::new(now)),
        }
    }
}

fn clawbridge(dir: &Path, env: &[(String, String)], args: &[String]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawbridge"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("CLAWBRIDGE_STATE_DIR", dir)
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The header of a PNG of `width`×`height` (all that is read of it before the upload).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
    bytes.extend_from_slice(&[0x5a; 64]);
    bytes
}

const SOLAPI_TEMPLATES: &str = r##"
[[bizmsg.templates]]
templateCode = "SHIPPED"
templateId = "KA01TP1"
text = "#{name}님, 주문하신 상품이 발송되었습니다. 운송장 #{tracking}"

[[bizmsg.templates]]
templateCode = "REVIEWED"
templateId = "KA01TP2"
text = "#{name}님, 예약이 확정되었습니다."
"##;

#[tokio::test]
async fn solapi_alimtalk_templates_are_synced_page_by_page_listed_with_status_and_variables_and_cached() {
    let fake = FakeSolapi::start().await;
    {
        let mut s = fake.state();
        s.templates = vec![
            template(
                "KA01TP1",
                "발송",
                "#{name}님, 주문하신 상품이 발송되었습니다. 운송장 #{tracking}",
                "APPROVED",
                &["name", "tracking"],
            ),
            template("KA01TP2", "예약", "#{name}님, 예약이 확정되었습니다.", "INSPECTING", &["name"]),
            template("KA01TP3", "반려", "#{name}님 #{coupon} 쿠폰", "REJECTED", &["name", "coupon"]),
            template("KA01TP4", "안내", "#{date} 휴무 안내", "APPROVED", &["date"]),
        ];
        s.templates_page_size = Some(3);
    }
    let cli = Cli::new(fake.env(), SOLAPI_TEMPLATES);

    let before = cli.run(&["alimtalk", "templates", "list"]).await;
    assert!(text(&before).contains("SHIPPED  alimtalk  not synced  variables: name, tracking"), "{}", text(&before));

    let sync = cli.run(&["alimtalk", "templates", "sync"]).await;
    assert!(sync.status.success(), "{}", text(&sync));
    assert!(text(&sync).contains("default: 4 AlimTalk template(s) from solapi, 2 approved"), "{}", text(&sync));
    assert!(text(&sync).contains("Solapi has no Brand Message template list"), "{}", text(&sync));
    let queries = fake.state().template_queries.len();
    assert_eq!(queries, 2, "four templates, three a page");

    let list = cli.run(&["alimtalk", "templates", "list"]).await;
    let shown = text(&list);
    for line in [
        "SHIPPED  alimtalk  approved  variables: name, tracking",
        "REVIEWED  alimtalk  in review  variables: name",
        "KA01TP3  alimtalk  rejected at the dealer, not declared  variables: name, coupon",
        "KA01TP4  alimtalk  approved at the dealer, not declared  variables: date",
    ] {
        assert!(shown.contains(line), "{line:?} in {shown}");
    }
    let json = cli.run(&["alimtalk", "templates", "list", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        rows[2],
        serde_json::json!({"code": "KA01TP3", "product": "alimtalk", "status": "rejected at the dealer, not declared",
                           "variables": ["name", "coupon"]})
    );

    // The sends are checked against the cached sync, without asking Solapi again.
    let reviewed =
        cli.run(&["alimtalk", "send", "--to", "010-1234-5678", "--template", "REVIEWED", "--var", "name=홍길동"]).await;
    assert!(!reviewed.status.success());
    assert!(
        text(&reviewed).contains("REVIEWED") && text(&reviewed).contains("in review"),
        "an unapproved template is refused locally: {}",
        text(&reviewed)
    );
    let shipped = cli
        .run(&[
            "alimtalk",
            "send",
            "--to",
            "010-1234-5678",
            "--template",
            "SHIPPED",
            "--var",
            "name=홍길동",
            "--var",
            "tracking=1",
        ])
        .await;
    assert!(text(&shipped).starts_with("accepted (id: 1)"), "{}", text(&shipped));
    let s = fake.state();
    assert_eq!(s.template_queries.len(), queries, "list and send read the cache");
    assert!(s.wire_errors.is_empty() && s.signature_errors.is_empty(), "{:?} {:?}", s.wire_errors, s.signature_errors);
}

const INFOBIP_TEMPLATES: &str = r##"
[[bizmsg.templates]]
templateCode = "OTP"
text = "인증번호는 #{code}입니다."

[[bizmsg.brandTemplates]]
templateCode = "WINTER"
text = "#{name}님, 겨울 세일 #{rate}% 할인"

[[bizmsg.brandTemplates]]
templateCode = "SPRING"
text = "#{name}님, 봄 세일"
"##;

#[tokio::test]
async fn infobip_brand_templates_are_synced_one_by_one_listed_and_checked_before_a_send() {
    let fake = FakeInfobip::start().await;
    fake.state().brand_templates = vec![
        brand_template("WINTER", "겨울", "#{name}님, 겨울 세일 #{rate}% 할인", Some("쇼핑하기")),
        brand_template("SPRING", "봄", "#{name}님, 봄맞이 세일 #{rate}%", None),
        brand_template("SUMMER", "여름", "#{name}님, 여름 세일 #{code}", None),
    ];
    let cli = Cli::new(fake.env(), INFOBIP_TEMPLATES);
    let sync = cli.run(&["alimtalk", "templates", "sync"]).await;
    assert!(sync.status.success(), "{}", text(&sync));
    let shown = text(&sync);
    assert!(shown.contains("default: 3 Brand Message template(s) from infobip, 3 approved"), "{shown}");
    assert!(!shown.contains("AlimTalk template(s) from infobip"), "Infobip lists no AlimTalk templates: {shown}");
    assert!(shown.contains("Infobip has no AlimTalk template list"), "{shown}");
    let asked = fake.state().template_queries.len();
    assert_eq!(asked, 4, "one page of codes, then each template");

    let list = cli.run(&["alimtalk", "templates", "list"]).await;
    let shown = text(&list);
    for line in [
        "OTP  alimtalk  declared (the dealer has no template list)  variables: code",
        "WINTER  brand  approved  variables: name, rate",
        "SPRING  brand  approved, but differs from the declared text  variables: name",
        "SUMMER  brand  approved at the dealer, not declared  variables: name, code",
    ] {
        assert!(shown.contains(line), "{line:?} in {shown}");
    }

    let spring = cli.run(&["brand", "send", "--to", "010-1234-5678", "--template", "SPRING", "--var", "name=a"]).await;
    assert!(!spring.status.success());
    assert!(text(&spring).contains("Brand Message template \"SPRING\": text differs"), "{}", text(&spring));
    let winter = cli
        .run(&[
            "brand",
            "send",
            "--to",
            "010-1234-5678",
            "--template",
            "WINTER",
            "--var",
            "name=홍길동",
            "--var",
            "rate=20",
        ])
        .await;
    assert!(text(&winter).starts_with("accepted (id: 1"), "{}", text(&winter));
    let s = fake.state();
    assert_eq!(s.template_queries.len(), asked, "the checks read the cache");
    assert!(s.wire_errors.is_empty(), "{:?}", s.wire_errors);
}

const SOLAPI_BRAND: &str = r##"
[[bizmsg.brandTemplates]]
templateCode = "WINTER"
templateId = "KA01TP9"
chatBubbleType = "IMAGE"
text = "#{name}님, 겨울 세일 #{rate}% 할인"
"##;

#[tokio::test]
async fn a_solapi_brand_template_image_is_uploaded_once_as_bms_and_every_send_names_its_file_id() {
    let fake = FakeSolapi::start().await;
    let cli = Cli::new(fake.env(), SOLAPI_BRAND);
    std::fs::write(cli.path("sale.png"), png(800, 400)).unwrap();
    let image = cli.path("sale.png").display().to_string();
    let cli = &cli;
    let send = |to: &'static str| {
        let image = image.clone();
        async move {
            let args =
                ["brand", "send", "--to", to, "--template", "WINTER", "--var", "name=홍길동", "--var", "rate=20"];
            cli.run(&[&args[..], &["--image", &image]].concat()).await
        }
    };
    let first = send("010-1111-2222").await;
    assert!(text(&first).starts_with("accepted (id: 1"), "{}", text(&first));
    let second = send("010-3333-4444").await;
    assert!(text(&second).starts_with("accepted (id: 2"), "another send of the same image: {}", text(&second));
    {
        let s = fake.state();
        assert_eq!(s.uploads.len(), 1, "the same image is uploaded once");
        let upload = &s.uploads[0];
        assert_eq!((upload.kind.as_str(), upload.name.as_str()), ("BMS", "sale.png"));
        assert_eq!(upload.bytes, png(800, 400));
        assert!(s.signature_errors.is_empty(), "{:?}", s.signature_errors);
    }

    let store = cli.store().await;
    let (one, two) = (store.get_bizmsg(1).await.unwrap().unwrap(), store.get_bizmsg(2).await.unwrap().unwrap());
    assert!(one.payload.contains("\"dealerRef\":\"ST01FILE1\""), "{}", one.payload);
    assert!(two.payload.contains("\"dealerRef\":\"ST01FILE1\""), "{}", two.payload);
    let worker = cli.worker(&store, fake.env(), one.next_at.max(two.next_at));
    assert_eq!(worker.round().await.unwrap(), 2);
    for id in [1, 2] {
        assert_eq!(store.get_bizmsg(id).await.unwrap().unwrap().state, BizmsgState::Accepted);
    }
    let s = fake.state();
    assert!(s.wire_errors.is_empty(), "{:?}", s.wire_errors);
    let sent: Vec<(&str, &str)> = s.taken.iter().map(|t| (t.to.as_str(), t.kind.as_str())).collect();
    assert_eq!(sent, [("01011112222", "BMS_IMAGE"), ("01033334444", "BMS_IMAGE")]);
    for taken in &s.taken {
        assert_eq!(
            taken.kakao_options,
            serde_json::json!({"pfId": "KA01PF1", "templateId": "KA01TP9",
                               "variables": {"#{name}": "홍길동", "#{rate}": "20"},
                               "bms": {"targeting": "I", "chatBubbleType": "IMAGE", "imageId": "ST01FILE1"},
                               "disableSms": true})
        );
    }
    assert_eq!(s.uploads.len(), 1, "the worker sends by the file id and uploads nothing");
}

#[tokio::test]
async fn infobip_takes_a_brand_message_image_by_url_and_refuses_a_file_with_the_fix() {
    let fake = FakeInfobip::start().await;
    let cli = Cli::new(fake.env(), "");
    std::fs::write(cli.path("sale.png"), png(800, 400)).unwrap();
    let file = cli.path("sale.png").display().to_string();
    let refused = cli.run(&["brand", "send", "--to", "010-1234-5678", "--text", "겨울 세일", "--image", &file]).await;
    assert!(!refused.status.success());
    let shown = text(&refused);
    assert!(
        shown.contains("Infobip takes Brand Message images by URL") && shown.contains("give --image https://"),
        "{shown}"
    );
    let store = cli.store().await;
    assert!(store.get_bizmsg(1).await.unwrap().is_none(), "nothing stored");

    let url = "https://cdn.example.com/sale.png";
    let out = cli.run(&["brand", "send", "--to", "010-1234-5678", "--text", "겨울 세일", "--image", url]).await;
    assert!(text(&out).starts_with("accepted (id: 1"), "{}", text(&out));
    let row = store.get_bizmsg(1).await.unwrap().unwrap();
    let worker = cli.worker(&store, fake.env(), row.next_at);
    assert_eq!(worker.round().await.unwrap(), 1);
    assert_eq!(store.get_bizmsg(1).await.unwrap().unwrap().state, BizmsgState::Accepted);
    let s = fake.state();
    assert_eq!(s.requests.len(), 1, "the refused file made no request");
    let (path, body) = &s.requests[0];
    assert_eq!(path, "/kakao-chingu/1/messages");
    assert_eq!(
        body["messages"][0]["content"],
        serde_json::json!({"type": "IMAGE_FREE_FORM", "text": "겨울 세일", "image": {"url": url}})
    );
}
