//! Accounts under attack through the gateway: changing credentials, look-alike
//! addresses, and sign-in kept fair while failing attempts flood it.

use std::time::Duration;

use testkit::eventually;

use crate::helpers::{Platform, assert_problem};

#[tokio::test(flavor = "multi_thread")]
async fn changing_ones_password_needs_the_current_one_and_ends_every_earlier_token() {
    let platform = Platform::start("0").await;
    let client = &platform.gateway.client;
    let (user, old_token) = platform.register("careful@example.com").await;
    let me = platform.url(&format!("/api/users/{}", user["id"].as_str().unwrap()));
    let change = |body: serde_json::Value| client.put(&me).bearer_auth(&old_token).json(&body).send();

    // A stolen token alone changes neither the password nor the e-mail address.
    let without = change(serde_json::json!({"password": "NewSecret456!"})).await.unwrap();
    let problem = assert_problem(without, 400).await;
    assert_eq!(problem["errors"][0]["field"], "currentPassword", "{problem}");
    assert_problem(change(serde_json::json!({"email": "thief@example.com"})).await.unwrap(), 400).await;
    let wrong = change(serde_json::json!({"password": "NewSecret456!", "currentPassword": "Guess123!"})).await.unwrap();
    assert_problem(wrong, 403).await;
    assert_eq!(client.get(&me).bearer_auth(&old_token).send().await.unwrap().status(), 200);

    let changed =
        change(serde_json::json!({"password": "NewSecret456!", "currentPassword": "SecurePass123!"})).await.unwrap();
    assert_eq!(changed.status(), 200);
    let at = std::time::Instant::now();
    eventually("a token from before the change to be refused", Duration::from_secs(5), || async {
        let response = client.get(&me).bearer_auth(&old_token).send().await.ok()?;
        (response.status() == 401).then_some(())
    })
    .await;
    println!("a token from before a password change was refused {:.2} s after it", at.elapsed().as_secs_f64());

    let login = |password: &'static str| {
        client
            .post(platform.url("/api/auth/login"))
            .json(&serde_json::json!({"email": "careful@example.com", "password": password}))
            .send()
    };
    assert_problem(login("SecurePass123!").await.unwrap(), 401).await;
    let signed_in = login("NewSecret456!").await.unwrap();
    assert_eq!(signed_in.status(), 200);
    let new_token = signed_in.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(client.get(&me).bearer_auth(&new_token).send().await.unwrap().status(), 200);
    // A rename is no change of credentials: the new token lives on.
    let renamed = client.put(&me).bearer_auth(&new_token).json(&serde_json::json!({"name": "Still Me"})).send();
    assert_eq!(renamed.await.unwrap().status(), 200);
    assert_eq!(client.get(&me).bearer_auth(&new_token).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn look_alike_addresses_are_the_same_account() {
    let platform = Platform::start("0").await;
    let client = &platform.gateway.client;
    platform.register("lookalike@example.com").await;
    for spelling in [
        "ｌookalike@example.com",
        "lookalike@ｅxample.com",
        "\"lookalike\"@example.com",
        "LOOKALIKE@EXAMPLE.COM",
        "\"LookAlike\"@Example.com",
    ] {
        let register = client
            .post(platform.url("/api/auth/register"))
            .json(&serde_json::json!({"email": spelling, "name": "Twin", "password": "SecurePass123!"}))
            .send()
            .await
            .unwrap();
        assert_problem(register, 409).await;
    }
    let cyrillic = client
        .post(platform.url("/api/auth/register"))
        .json(&serde_json::json!({"email": "lookаlike@example.com", "name": "Twin", "password": "SecurePass123!"}))
        .send()
        .await
        .unwrap();
    assert_problem(cyrillic, 400).await;
    // Any spelling signs in to the one account.
    let login = client
        .post(platform.url("/api/auth/login"))
        .json(&serde_json::json!({"email": "ｌookalike@ＥＸＡＭＰＬＥ.com", "password": "SecurePass123!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
}

/// A client that connects from `127.0.0.<n>`: the gateway sees a distinct address for each.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, n])).build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_failing_sign_ins_from_many_addresses_keeps_a_valid_one_out_no_longer_than_its_retry_after() {
    let platform = Platform::start("0").await;
    platform.register("patient@example.com").await;
    let login = platform.url("/api/auth/login");
    let burst: Vec<_> = (0..80u8)
        .map(|i| {
            let request = client_from(10 + i)
                .post(&login)
                .json(&serde_json::json!({"email": format!("guess-{i}@example.com"), "password": "Wrong-guess1!"}))
                .send();
            tokio::spawn(request)
        })
        .collect();
    // The valid sign-in arrives while the burst is in progress, from an address of its own.
    let patient = client_from(200);
    let body = serde_json::json!({"email": "patient@example.com", "password": "SecurePass123!"});
    let mut answer = patient.post(&login).json(&body).send().await.unwrap();
    let started = std::time::Instant::now();
    let mut waits = Vec::new();
    while answer.status() == 503 {
        let seconds: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        waits.push(seconds);
        assert!(waits.len() <= 3, "still refused after waiting {waits:?} s as told");
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        answer = patient.post(&login).json(&body).send().await.unwrap();
    }
    assert_eq!(answer.status(), 200, "the valid sign-in got {}", answer.status());
    println!(
        "a valid sign-in amid 80 failing ones got in after {:.2} s (told to wait {waits:?})",
        started.elapsed().as_secs_f64()
    );
    let mut refused = 0;
    for request in burst {
        let response = request.await.unwrap().unwrap();
        match response.status().as_u16() {
            401 => {}
            503 => {
                assert!(response.headers().contains_key("retry-after"), "a 503 without Retry-After");
                assert_problem(response, 503).await;
                refused += 1;
            }
            other => panic!("a failing sign-in got {other}"),
        }
    }
    println!("the burst: {} of 80 answered 401, {refused} refused with 503 and Retry-After", 80 - refused);
}

#[tokio::test(flavor = "multi_thread")]
async fn guesses_at_one_account_slow_that_account_only() {
    let platform = Platform::start("0").await;
    platform.register("target@example.com").await;
    platform.register("bystander@example.com").await;
    let login = platform.url("/api/auth/login");
    let guesses: Vec<_> = (0..12u8)
        .map(|i| {
            let request = client_from(30 + i)
                .post(&login)
                .json(&serde_json::json!({"email": "target@example.com", "password": format!("Guess-{i}-wrong!")}))
                .send();
            tokio::spawn(request)
        })
        .collect();
    let bystander = client_from(250)
        .post(&login)
        .json(&serde_json::json!({"email": "bystander@example.com", "password": "SecurePass123!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bystander.status(), 200, "another account's sign-in was held up");
    let mut throttled = 0;
    for guess in guesses {
        let response = guess.await.unwrap().unwrap();
        match response.status().as_u16() {
            401 => {}
            429 => {
                assert!(response.headers().contains_key("retry-after"), "a 429 without Retry-After");
                throttled += 1;
            }
            other => panic!("a guess got {other}"),
        }
    }
    assert!(throttled > 0, "12 simultaneous guesses at one account all went to the hashing threads");
}
