//! The fake API server driven by kube-rs's own typed `Api` and `kube::runtime::watcher`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use fake_apiserver::{FakeApiServer, Kind};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use lab_kit::objects::{self, labeled, typed};
use serde_json::json;

fn svc(ns: &str, name: &str, labels: serde_json::Value) -> Service {
    typed(labeled(objects::service(ns, name, "10.96.0.10"), labels))
}

fn node(name: &str) -> Node {
    let zone = json!({"topology.kubernetes.io/zone": "z1"});
    typed(labeled(objects::node(name), zone))
}

async fn next<S, T>(s: &mut S) -> T
where
    S: futures::Stream<Item = T> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("timed out")
        .expect("stream ended")
}

#[tokio::test]
async fn typed_list_get_and_resource_versions() {
    let fake = FakeApiServer::start().await.unwrap();
    let rv1 = fake.apply(&svc("default", "a", json!({}))).unwrap();
    let rv2 = fake.apply(&svc("kube-system", "b", json!({}))).unwrap();
    assert!(rv2 > rv1);
    let client = fake.kube_client().unwrap();

    let all: Api<Service> = Api::all(client.clone());
    let list = all.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(
        list.metadata.resource_version.as_deref(),
        Some(rv2.to_string().as_str())
    );

    let ns: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let list = ns.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let b = ns.get("b").await.unwrap();
    assert_eq!(
        b.metadata.resource_version.as_deref(),
        Some(rv2.to_string().as_str())
    );
    assert!(b.metadata.uid.is_some());

    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
}

#[tokio::test]
async fn pagination_with_limit_and_continue() {
    let fake = FakeApiServer::start().await.unwrap();
    for i in 0..5 {
        fake.apply(&svc("default", &format!("s{i}"), json!({})))
            .unwrap();
    }
    let api: Api<Service> = Api::all(fake.kube_client().unwrap());
    let p1 = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(p1.items.len(), 2);
    let token = p1.metadata.continue_.clone().unwrap();
    let p2 = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let p3 = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(p2.metadata.continue_.as_deref().unwrap()),
        )
        .await;
    let p3 = p3.unwrap();
    assert_eq!(p3.items.len(), 1);
    assert!(p3.metadata.continue_.is_none());
    assert_eq!(p2.metadata.resource_version, p1.metadata.resource_version);
    // A continue token from before a compaction is gone.
    fake.apply(&svc("default", "s9", json!({}))).unwrap();
    fake.compact();
    let err = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 410),
        "expected 410"
    );
}

#[tokio::test]
async fn selectors_on_list_and_watch() {
    let fake = FakeApiServer::start().await.unwrap();
    fake.apply(&svc("default", "plain", json!({}))).unwrap();
    fake.apply(&svc(
        "default",
        "headless",
        json!({"service.kubernetes.io/headless": ""}),
    ))
    .unwrap();
    fake.apply(&svc(
        "default",
        "other",
        json!({"service.kubernetes.io/service-proxy-name": "x"}),
    ))
    .unwrap();
    fake.apply(&svc("default", "app", json!({"app": "web", "tier": "fe"})))
        .unwrap();
    let api: Api<Service> = Api::all(fake.kube_client().unwrap());
    let names = |l: kube::core::ObjectList<Service>| {
        l.items
            .into_iter()
            .map(|s| s.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    let stock = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name";
    assert_eq!(
        names(
            api.list(&ListParams::default().labels(stock))
                .await
                .unwrap()
        ),
        ["app", "plain"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app=web,tier!=be"))
                .await
                .unwrap()
        ),
        ["app"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app"))
                .await
                .unwrap()
        ),
        ["app"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=other"))
                .await
                .unwrap()
        ),
        ["other"]
    );
    let bad = api
        .list(&ListParams::default().fields("spec.clusterIP=1"))
        .await
        .unwrap_err();
    assert!(matches!(bad, kube::Error::Api(s) if s.code == 400));

    // A watch sees an object leaving its selection as DELETED and entering it as ADDED.
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut w = api
        .watch(&WatchParams::default().labels(stock), &rv)
        .await
        .unwrap()
        .boxed();
    fake.apply(&svc(
        "default",
        "plain",
        json!({"service.kubernetes.io/headless": ""}),
    ))
    .unwrap();
    fake.apply(&svc("default", "other", json!({}))).unwrap();
    fake.apply(&svc(
        "default",
        "headless",
        json!({"service.kubernetes.io/headless": "", "x": "y"}),
    ))
    .unwrap();
    fake.apply(&svc("default", "app", json!({"app": "web2"})))
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut w).await.unwrap() {
            WatchEvent::Added(s) => seen.push(format!("ADDED {}", s.metadata.name.unwrap())),
            WatchEvent::Modified(s) => seen.push(format!("MODIFIED {}", s.metadata.name.unwrap())),
            WatchEvent::Deleted(s) => seen.push(format!("DELETED {}", s.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["DELETED plain", "ADDED other", "MODIFIED app"]);
}

#[tokio::test]
async fn node_field_selector_and_cluster_scoped_kinds() {
    let fake = FakeApiServer::start().await.unwrap();
    fake.apply(&node("n1")).unwrap();
    fake.apply(&node("n2")).unwrap();
    let cidr: ServiceCIDR = serde_json::from_value(
        json!({"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/16"]}}),
    )
    .unwrap();
    fake.apply(&cidr).unwrap();
    let client = fake.kube_client().unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let l = nodes
        .list(&ListParams::default().fields("metadata.name=n2"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    assert_eq!(l.items[0].metadata.name.as_deref(), Some("n2"));
    assert!(nodes.get("n1").await.is_ok());
    let cidrs: Api<ServiceCIDR> = Api::all(client.clone());
    assert_eq!(
        cidrs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    fake.set_served(Kind::ServiceCidr, false);
    let err = cidrs.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404));
}

#[tokio::test]
async fn raw_watch_events_and_410_for_old_resource_version() {
    let fake = FakeApiServer::start_with(None).await.unwrap();
    let api: Api<EndpointSlice> = Api::all(fake.kube_client().unwrap());
    let slice = |ep: &str| -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ep]}],
        }))
        .unwrap()
    };
    let start = fake.apply(&slice("10.0.0.1")).unwrap();
    let mut w = api
        .watch(&WatchParams::default(), &start.to_string())
        .await
        .unwrap()
        .boxed();
    fake.apply(&slice("10.0.0.2")).unwrap();
    assert!(fake.delete(Kind::EndpointSlice, Some("default"), "web-1"));
    assert!(matches!(
        next(&mut w).await.unwrap(),
        WatchEvent::Modified(_)
    ));
    match next(&mut w).await.unwrap() {
        WatchEvent::Deleted(s) => {
            let rv: u64 = s.metadata.resource_version.unwrap().parse().unwrap();
            assert_eq!(rv, fake.resource_version());
        }
        other => panic!("{other:?}"),
    }
    fake.bookmark();
    assert!(matches!(
        next(&mut w).await.unwrap(),
        WatchEvent::Bookmark(_)
    ));

    // Replay from an older resourceVersion, then compaction makes it too old.
    let mut replay = api
        .watch(&WatchParams::default(), &start.to_string())
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        next(&mut replay).await.unwrap(),
        WatchEvent::Modified(_)
    ));
    assert!(matches!(
        next(&mut replay).await.unwrap(),
        WatchEvent::Deleted(_)
    ));
    fake.compact();
    // Open watches are told 410 and closed.
    match next(&mut w).await.unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("{other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .is_none()
    );
    let mut old = api
        .watch(&WatchParams::default(), &start.to_string())
        .await
        .unwrap()
        .boxed();
    match next(&mut old).await.unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn runtime_watcher_relists_after_compaction_and_resumes_after_disconnect() {
    let fake = FakeApiServer::start().await.unwrap();
    fake.apply(&svc("default", "a", json!({}))).unwrap();
    let api: Api<Service> = Api::all(fake.kube_client().unwrap());
    let mut w = watcher(api, watcher::Config::default()).boxed();
    assert!(matches!(next(&mut w).await.unwrap(), watcher::Event::Init));
    assert!(matches!(
        next(&mut w).await.unwrap(),
        watcher::Event::InitApply(_)
    ));
    assert!(matches!(
        next(&mut w).await.unwrap(),
        watcher::Event::InitDone
    ));

    fake.apply(&svc("default", "b", json!({}))).unwrap();
    assert!(
        matches!(next(&mut w).await.unwrap(), watcher::Event::Apply(s) if s.metadata.name.as_deref() == Some("b"))
    );

    // A dropped watch resumes from the last resourceVersion: no re-list, nothing missed.
    let lists_before = fake
        .request_log()
        .iter()
        .filter(|r| r.is_list_of("services"))
        .count();
    assert_eq!(fake.disconnect_watches(), 1);
    fake.apply(&svc("default", "c", json!({}))).unwrap();
    assert!(
        matches!(next(&mut w).await.unwrap(), watcher::Event::Apply(s) if s.metadata.name.as_deref() == Some("c"))
    );
    let log = fake.request_log();
    assert_eq!(
        log.iter().filter(|r| r.is_list_of("services")).count(),
        lists_before
    );
    assert_eq!(log.iter().filter(|r| r.is_watch_of("services")).count(), 2);

    // Compaction: the watcher gets 410 and re-lists (Init .. InitDone), without deletions.
    fake.compact();
    assert!(next(&mut w).await.is_err());
    assert!(matches!(next(&mut w).await.unwrap(), watcher::Event::Init));
    let mut names = Vec::new();
    loop {
        match next(&mut w).await.unwrap() {
            watcher::Event::InitApply(s) => names.push(s.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(names, ["a", "b", "c"]);
}

#[tokio::test]
async fn faults_fail_next_refuse_lists_and_delay() {
    let fake = FakeApiServer::start().await.unwrap();
    let api: Api<Service> = Api::all(fake.kube_client().unwrap());
    fake.fail_next(2);
    for _ in 0..2 {
        let e = api.list(&ListParams::default()).await.unwrap_err();
        assert!(matches!(e, kube::Error::Api(s) if s.code == 500));
    }
    assert!(api.list(&ListParams::default()).await.is_ok());
    fake.refuse_lists(true);
    assert!(
        matches!(api.list(&ListParams::default()).await.unwrap_err(), kube::Error::Api(s) if s.code == 500)
    );
    fake.refuse_lists(false);
    fake.set_delay(Duration::from_millis(300));
    let t = std::time::Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    let log = fake.request_log();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200, 500, 200]
    );
}

#[tokio::test]
async fn events_from_the_kube_runtime_recorder_are_recorded() {
    let fake = FakeApiServer::start().await.unwrap();
    let client = fake.kube_client().unwrap();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "kube-ipvs".into(),
            instance: Some("n1".into()),
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some("default".into()),
        name: Some("web".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Warning,
        reason: "InvalidService".into(),
        note: Some("spec.ports[0].port: 0 is out of range".into()),
        action: "Reject".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events = fake.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], "InvalidService");
    assert_eq!(events[0]["regarding"]["name"], "web");
    assert_eq!(events[0]["metadata"]["namespace"], "default");
    let methods: Vec<String> = fake.request_log().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["POST", "PATCH"]);
}

#[tokio::test]
async fn kubeconfig_for_a_separate_process() {
    let fake = FakeApiServer::start().await.unwrap();
    fake.apply(&node("n1")).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&fake.kubeconfig_yaml()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let nodes: Api<Node> = Api::all(client);
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn control_endpoints_drive_a_fake_in_another_process() {
    let fake = FakeApiServer::start().await.unwrap();
    let client = fake.kube_client().unwrap();
    let post = |path: &str, body: &str| {
        http::Request::post(path)
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.96.0.1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\n";
    let r = client
        .request_text(post("/_fake/apply", yaml))
        .await
        .unwrap();
    assert!(r.contains("\"objects\":2"), "{r}");
    assert!(fake.get(Kind::Service, Some("default"), "web").is_some());
    client
        .request_text(post("/_fake/fail?n=1", ""))
        .await
        .unwrap();
    let api: Api<Node> = Api::all(client.clone());
    assert!(api.list(&ListParams::default()).await.is_err());
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let del = "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}}";
    client
        .request_text(post("/_fake/delete", del))
        .await
        .unwrap();
    assert!(fake.get(Kind::Node, None, "n1").is_none());
    let bad = client
        .request_text(post(
            "/_fake/apply",
            "{\"kind\":\"Pod\",\"apiVersion\":\"v1\"}",
        ))
        .await;
    assert!(matches!(bad, Err(kube::Error::Api(s)) if s.code == 422));
    // Control requests are not in the request log.
    assert!(
        fake.request_log()
            .iter()
            .all(|r| !r.path.starts_with("/_fake/"))
    );
}
