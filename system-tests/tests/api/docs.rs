//! The OpenAPI document: a snapshot (so a contract change shows up in review)
//! and the properties Swagger UI's Authorize and Try-it-out depend on; the AsyncAPI
//! document served beside it and linked from it.

use crate::helpers::spawn_gateway;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

async fn document() -> serde_json::Value {
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    let response = gateway.client.get(gateway.url("/api/docs/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_matches_its_snapshot() {
    let document = document().await;
    let rendered = serde_json::to_string_pretty(&document).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(SNAPSHOT).expect("snapshot exists (UPDATE_SNAPSHOTS=1 writes it)");
    assert!(
        rendered == expected,
        "the OpenAPI document changed; review it and run `UPDATE_SNAPSHOTS=1 cargo test -p system-tests --test api docs` to accept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_is_documented_with_its_security_and_errors() {
    let document = document().await;
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let expected = [
        ("post", "/api/auth/register"),
        ("post", "/api/auth/login"),
        ("post", "/api/users"),
        ("get", "/api/users"),
        ("get", "/api/users/{id}"),
        ("put", "/api/users/{id}"),
        ("delete", "/api/users/{id}"),
        ("post", "/api/orders"),
        ("get", "/api/orders"),
        ("get", "/api/orders/{id}"),
        ("patch", "/api/orders/{id}"),
        ("delete", "/api/orders/{id}"),
        ("get", "/api/orders/stats"),
    ];
    let mut documented = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            documented += 1;
            assert!(expected.contains(&(method.as_str(), path.as_str())), "undocumented route {method} {path}");
            let public = path.starts_with("/api/auth/");
            assert_eq!(operation.get("security").is_none(), public, "{method} {path}: security");
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success response");
            for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4')) {
                assert!(
                    response["content"].get("application/problem+json").is_some(),
                    "{method} {path}: {status} is not problem+json"
                );
            }
            if !public {
                assert!(responses.contains_key("401"), "{method} {path}: 401 undocumented");
            }
        }
    }
    assert_eq!(documented, expected.len());
    let item = &document["components"]["schemas"]["OrderLine"]["properties"];
    assert_eq!(item["quantity"]["maximum"], 9999);
    assert_eq!(item["productId"]["pattern"], "^product-[A-Za-z0-9-]+$");
}

#[tokio::test(flavor = "multi_thread")]
async fn swagger_ui_is_served_from_vendored_assets() {
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    let page = gateway.client.get(gateway.url("/api/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let bundle = gateway.client.get(gateway.url("/api/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000, "the bundle is served by the gateway itself");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_asyncapi_document_is_served_without_a_token_and_linked_from_swagger_ui() {
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    let response = gateway.client.get(gateway.url("/api/docs/asyncapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: serde_json::Value = response.json().await.unwrap();
    assert_eq!(served, contracts::asyncapi::document().unwrap(), "the gateway serves the contracts' document");
    assert_eq!(served["asyncapi"], "3.0.0");
    // Swagger UI renders the OpenAPI description as Markdown: the link is what a reader sees.
    let description = document().await["info"]["description"].as_str().unwrap().to_owned();
    assert!(description.contains("](/api/docs/asyncapi.json)"), "{description}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateways_root_leads_to_swagger_ui() {
    let gateway = spawn_gateway("http://127.0.0.1:1", "http://127.0.0.1:1").await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/api/docs/");
    let followed = gateway.client.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(followed.status(), 200, "the redirect lands on Swagger UI");
    assert!(followed.text().await.unwrap().contains("swagger-ui"), "Swagger UI's page");
}
