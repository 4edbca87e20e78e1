//! Pairing the renderer without a shared key: on its first load the renderer asks main for an
//! invitation (`POST /pair`, loopback only, the app's own `Host` and `Origin` — see `http`),
//! joins with it, and from then on opens its stored identity. Main hands out one invitation at
//! a time (the same one until it is used or expires) and none once a renderer has paired;
//! `--unpair-renderer` revokes the paired renderer so that a new browser store may pair.

use std::sync::Arc;
use std::time::Duration;

use chum::{Event, InviteOptions, Value};

use crate::App;
use crate::settings;

/// How long an invitation handed to the renderer is valid.
const INVITATION_TTL: Duration = Duration::from_secs(600);
const RENDERER: &str = "desktop.renderer";
/// The paired renderer's instance key (32 bytes), to revoke it.
const RENDERER_KEY: &str = "desktop.renderer.key";
/// The port the paired renderer's page came from (its origin).
const RENDERER_PORT: &str = "desktop.renderer.port";
const INVITATION: &str = "desktop.invitation";
const INVITATION_EXPIRES: &str = "desktop.invitation.expires";

/// Why main refuses to pair.
#[derive(Debug)]
pub enum Refused {
    /// A renderer is paired already: its instance id, and the port its page was served from
    /// (when known).
    AlreadyPaired(String, Option<u64>),
    /// The store failed.
    Failed(chum::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::AlreadyPaired(instance, port) => {
                match port {
                    Some(port) => write!(
                        f,
                        "main's renderer is the page at http://127.0.0.1:{port} (instance {instance}), and this page's origin holds no store of it. "
                    )?,
                    None => write!(
                        f,
                        "main has a renderer paired already (instance {instance}), and this page's origin holds no store of it. "
                    )?,
                }
                write!(
                    f,
                    "If you moved main to another port, start it on the old one again (a page's data belongs to its origin: host and port). If this browser's site data was cleared, or you want this page to be the renderer from now on, restart main with --unpair-renderer (cargo xtask desktop -- --unpair-renderer): what the old page had not synced yet is then lost."
                )
            }
            Refused::Failed(error) => write!(f, "cannot make an invitation: {error}"),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The invitation for the renderer: the outstanding one, or a new one-use invitation naming
/// main's CHUM address.
pub async fn invitation(app: &App) -> Result<String, Refused> {
    let _one_at_a_time = app.pairing.lock().await;
    let instance = &app.instance;
    if let Some(renderer) = settings::text(instance, RENDERER)
        .await
        .map_err(Refused::Failed)?
    {
        let port = settings::get(instance, RENDERER_PORT)
            .await
            .map_err(Refused::Failed)?
            .and_then(|value| value.as_int())
            .and_then(chum_object::Int::to_u64);
        return Err(Refused::AlreadyPaired(renderer, port));
    }
    let outstanding = settings::text(instance, INVITATION)
        .await
        .map_err(Refused::Failed)?;
    let expires = settings::get(instance, INVITATION_EXPIRES)
        .await
        .map_err(Refused::Failed)?
        .and_then(|value| value.as_int())
        .and_then(chum_object::Int::to_u64)
        .unwrap_or(0);
    // Still valid for a minute at least: hand out the same one again.
    if let Some(text) = outstanding
        && expires > now_ms() + 60_000
    {
        return Ok(text);
    }
    let invitation = instance
        .invite_with(
            InviteOptions::new(INVITATION_TTL)
                .uses(1)
                .address(app.chum_url()),
        )
        .await
        .map_err(Refused::Failed)?;
    let text = invitation.to_text();
    let expires = now_ms() + INVITATION_TTL.as_millis() as u64;
    settings::set(instance, INVITATION, Value::from(text.as_str()))
        .await
        .map_err(Refused::Failed)?;
    settings::set(instance, INVITATION_EXPIRES, Value::from(expires))
        .await
        .map_err(Refused::Failed)?;
    Ok(text)
}

/// Records the renderer once an instance of main's person connects while an invitation is
/// out: from then on no invitation is handed out.
pub async fn watch_renderer(app: Arc<App>) {
    let instance = &app.instance;
    let mut events = instance.events();
    while let Some(event) = events.next().await {
        let peer = match event {
            Event::PeerConnected {
                instance: Some(peer),
                person: Some(person),
                ..
            } if person == instance.person() && peer != instance.instance_id() => peer,
            // Events were missed: an instance of the person first seen since the invitation
            // went out is the one that redeemed it.
            Event::Lagged { .. } => {
                let issued = settings::get(instance, INVITATION_EXPIRES)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|value| value.as_int())
                    .and_then(chum_object::Int::to_u64)
                    .unwrap_or(0)
                    .saturating_sub(INVITATION_TTL.as_millis() as u64);
                let newcomer = instance.peers().await.ok().and_then(|peers| {
                    peers
                        .into_iter()
                        .find(|peer| peer.same_person && peer.first_seen_ms >= issued)
                        .map(|peer| peer.instance)
                });
                match newcomer {
                    Some(peer) => peer,
                    None => continue,
                }
            }
            _ => continue,
        };
        let _one_at_a_time = app.pairing.lock().await;
        let paired = settings::text(instance, RENDERER).await.ok().flatten();
        let outstanding = settings::text(instance, INVITATION).await.ok().flatten();
        let expires = settings::get(instance, INVITATION_EXPIRES)
            .await
            .ok()
            .flatten()
            .and_then(|value| value.as_int())
            .and_then(chum_object::Int::to_u64)
            .unwrap_or(0);
        // Only while an invitation is out and valid: an instance of the person connecting
        // then is the one that redeemed it (main hands out no other).
        if paired.is_none() && outstanding.is_some() && expires > now_ms() {
            let _ = settings::set(instance, RENDERER, Value::from(peer.to_string().as_str())).await;
            let _ = settings::set(instance, RENDERER_PORT, Value::from(u64::from(app.port))).await;
            let _ = settings::set(instance, RENDERER_KEY, Value::from(peer.0.to_vec())).await;
            let _ = settings::set(instance, INVITATION, Value::from("")).await;
            eprintln!("chum-desktop: the renderer paired (instance {peer})");
        }
    }
}

/// Revokes the paired renderer and forgets it: a new browser store may pair.
pub async fn unpair(app: &App) -> chum::Result<String> {
    let _one_at_a_time = app.pairing.lock().await;
    let instance = &app.instance;
    let Some(renderer) = settings::text(instance, RENDERER).await? else {
        return Ok("no renderer was paired".into());
    };
    let key = settings::get(instance, RENDERER_KEY)
        .await?
        .and_then(|value| match value {
            Value::Bytes(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        });
    let revoked = match key {
        Some(key) => Some(chum::InstanceId(key)),
        // Paired before the key was kept: find it among the peers.
        None => instance
            .peers()
            .await?
            .into_iter()
            .map(|peer| peer.instance)
            .find(|peer| peer.to_string() == renderer),
    };
    let Some(revoked) = revoked else {
        return Err(chum::Error::NotFound(format!(
            "the renderer {renderer} is recorded but its key is not: it cannot be revoked"
        )));
    };
    let _revoked = instance.revoke_instance(revoked).await?;
    settings::set(instance, RENDERER, Value::from("")).await?;
    settings::set(instance, INVITATION, Value::from("")).await?;
    Ok(format!(
        "the renderer {renderer} is revoked (its page can no longer sync; what it had not synced stays in that browser only); the next page load on http://127.0.0.1:{} pairs a new one",
        app.port
    ))
}
