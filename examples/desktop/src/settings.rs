//! Main's settings: instance-local `Settings` objects (`{key, value}`), never synced — the AI
//! endpoint and key stay on this machine's main process.

use chum::{Instance, Value};

fn settings_object(key: &str, value: Option<Value>) -> Value {
    let mut map = chum_object::Map::new();
    map.insert("$type", "Settings");
    map.insert("key", key);
    if let Some(value) = value {
        map.insert("value", value);
    }
    Value::Map(map)
}

/// The value of setting `key`, if set (an empty text counts as unset).
pub async fn get(instance: &Instance, key: &str) -> chum::Result<Option<Value>> {
    let id = instance.id_of(&settings_object(key, None))?;
    let Some(state) = instance.state(&id).await? else {
        return Ok(None);
    };
    let value = state.as_map().and_then(|map| map.get("value")).cloned();
    Ok(value.filter(|value| value.as_text() != Some("") && *value != Value::Null))
}

/// The text of setting `key`, if set.
pub async fn text(instance: &Instance, key: &str) -> chum::Result<Option<String>> {
    Ok(get(instance, key)
        .await?
        .and_then(|value| value.as_text().map(str::to_owned)))
}

/// Sets `key` to `value` (an empty text unsets it).
pub async fn set(instance: &Instance, key: &str, value: Value) -> chum::Result<()> {
    let _written = instance.put(&settings_object(key, Some(value))).await?;
    Ok(())
}
