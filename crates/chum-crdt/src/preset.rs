//! The seed's example types, as a preset other crates use: Message (append-only), Conversation
//! (last-write), Contact (field-merge) and Settings (instance-local).

use chum_object::recipe::{Field, Kind, Recipe, Strategy};

/// `Message`: append-only. `text` is required; `conversation` links to a Conversation's ID
/// hash and makes the message an entry of that conversation's collection; `needsAI`, `status`,
/// `originalId` (a link to the message this one enhances) are optional; `clock` and `author`
/// are set by the Instance API when an app creates one.
pub fn message() -> Recipe {
    Recipe::new("Message", Strategy::AppendOnly)
        .field(Field::new("text", Kind::Text))
        .field(
            Field::new("conversation", Kind::Link(vec!["Conversation".into()]))
                .optional()
                .collection(),
        )
        .field(Field::new("needsAI", Kind::Bool).optional())
        .field(Field::new("status", Kind::Text).optional())
        .field(Field::new("originalId", Kind::Link(vec!["Message".into()])).optional())
        .field(Field::new("clock", Kind::List(Box::new(Kind::Integer))).optional())
        .field(Field::new("author", Kind::Bytes).optional())
}

/// `Conversation`: last-write; ID field `id`; optional `title` and `members`.
pub fn conversation() -> Recipe {
    Recipe::new("Conversation", Strategy::LastWrite)
        .field(Field::new("id", Kind::Text).id())
        .field(Field::new("title", Kind::Text).optional())
        .field(Field::new("members", Kind::List(Box::new(Kind::Text))).optional())
}

/// `Contact`: field-merge; ID field `email`; optional `name`, `phone` and the set field `tags`.
pub fn contact() -> Recipe {
    Recipe::new("Contact", Strategy::FieldMerge)
        .field(Field::new("email", Kind::Text).id())
        .field(Field::new("name", Kind::Text).optional())
        .field(Field::new("phone", Kind::Text).optional())
        .field(Field::new("tags", Kind::Set(Box::new(Kind::Text))).optional())
}

/// `Settings`: instance-local; ID field `key`; optional `value` of any kind.
pub fn settings() -> Recipe {
    Recipe::new("Settings", Strategy::InstanceLocal)
        .field(Field::new("key", Kind::Text).id())
        .field(Field::new("value", Kind::Any).optional())
}

/// All four, in the order above.
pub fn seed() -> Vec<Recipe> {
    vec![message(), conversation(), contact(), settings()]
}

/// Whether objects of a type with this strategy may be offered to, sent to or accepted from a
/// peer (everything except instance-local).
pub fn syncs(strategy: Strategy) -> bool {
    strategy != Strategy::InstanceLocal
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seed_recipes_are_valid_and_round_trip() {
        for recipe in seed() {
            recipe.check().unwrap();
            assert_eq!(Recipe::from_value(&recipe.to_value()).unwrap(), recipe);
        }
        assert!(!syncs(settings().strategy));
        assert!(syncs(message().strategy));
    }
}
