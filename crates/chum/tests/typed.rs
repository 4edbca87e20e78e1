//! The typed API: `#[derive(Document)]`, documents, collections, queries and watches.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chum::{Document, Error, Id, Instance, Kind, QueryChange, Ref, Strategy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Document)]
#[serde(rename_all = "camelCase")]
struct Note {
    #[chum(id)]
    id: String,
    title: String,
    body: Option<String>,
    tags: BTreeSet<String>,
    pinned_by: Option<Id<Person>>,
    word_count: Option<u32>,
    #[serde(skip)]
    cached: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Document)]
#[chum(strategy = "last-write", name = "Profile", version = 2)]
struct Person {
    #[chum(id)]
    handle: String,
    name: Option<String>,
    links: Vec<chum::Cid>,
    extra: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Document)]
struct Comment {
    #[chum(collection)]
    note: Id<Note>,
    text: String,
    reply_to: Option<Ref<Comment>>,
    clock: Option<Vec<u64>>,
    author: Option<serde_bytes::ByteBuf>,
}

fn note(id: &str, title: &str) -> Note {
    Note {
        id: id.to_owned(),
        title: title.to_owned(),
        body: None,
        tags: BTreeSet::new(),
        pinned_by: None,
        word_count: None,
        cached: None,
    }
}

#[test]
fn the_derive_reads_kinds_options_sets_links_and_serde_names() {
    let recipe = Note::recipe();
    assert_eq!(recipe.name, "Note");
    assert_eq!(
        recipe.strategy,
        Strategy::FieldMerge,
        "ID fields: field-merge"
    );
    assert_eq!(recipe.version, 1);
    let field = |name: &str| recipe.get_field(name).unwrap().clone();
    assert!(field("id").id && !field("id").optional);
    assert_eq!(field("title").kind, Kind::Text);
    assert!(!field("title").optional);
    assert!(field("body").optional);
    assert_eq!(field("tags").kind, Kind::Set(Box::new(Kind::Text)));
    assert_eq!(field("pinnedBy").kind, Kind::Link(vec!["Profile".into()]));
    assert!(field("pinnedBy").optional);
    assert_eq!(field("wordCount").kind, Kind::Integer);
    assert!(
        recipe.get_field("cached").is_none(),
        "serde(skip) is not stored"
    );
    recipe.check().unwrap();

    let person = Person::recipe();
    assert_eq!((person.name.as_str(), person.version), ("Profile", 2));
    assert_eq!(person.strategy, Strategy::LastWrite);
    assert_eq!(
        person.get_field("links").unwrap().kind,
        Kind::List(Box::new(Kind::Link(Vec::new())))
    );
    assert_eq!(
        person.get_field("extra").unwrap().kind,
        Kind::Map(Box::new(Kind::Integer))
    );

    let comment = Comment::recipe();
    assert_eq!(comment.strategy, Strategy::AppendOnly, "no ID fields");
    assert!(comment.get_field("note").unwrap().collection);
    assert_eq!(comment.get_field("author").unwrap().kind, Kind::Bytes);
    comment.check().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_round_trip_and_updates_write_only_what_changed() {
    let inst = Instance::builder().memory().open().await.unwrap();
    let notes = inst.doc::<Note>();
    let mut first = note(&chum::fresh_id(), "groceries");
    first.tags = ["home".to_owned()].into();
    let id = notes.create(&first).await.unwrap();
    assert_eq!(id, notes.id_of(&first).unwrap());
    assert_eq!(notes.get(&id).await.unwrap(), Some(first.clone()));

    // A None that stays None writes nothing; a change writes one version.
    assert!(!notes.update(&id, |_| {}).await.unwrap());
    let versions_before = inst.of_type("Version").await.unwrap().len();
    assert!(
        notes
            .update(&id, |note| note.body = Some("milk".into()))
            .await
            .unwrap()
    );
    assert_eq!(
        inst.of_type("Version").await.unwrap().len(),
        versions_before + 1
    );
    // Some → None unsets; sets become exactly what the closure leaves.
    notes
        .update(&id, |note| {
            note.body = None;
            note.tags.insert("urgent".into());
            note.word_count = Some(3);
        })
        .await
        .unwrap();
    let now = notes.get(&id).await.unwrap().unwrap();
    assert_eq!(now.body, None);
    assert_eq!(now.tags, ["home".to_owned(), "urgent".to_owned()].into());
    assert_eq!(now.word_count, Some(3));
    // The ID fields cannot change in an update.
    assert!(matches!(
        notes.update(&id, |note| note.id = "other".into()).await,
        Err(Error::Invalid(_))
    ));
    // Unknown documents: None, and an update is NotFound.
    let missing: Id<Note> = notes.id_of(&note("missing", "x")).unwrap();
    assert_eq!(notes.get(&missing).await.unwrap(), None);
    assert!(matches!(
        notes.update(&missing, |_| {}).await,
        Err(Error::NotFound(_))
    ));
    notes.delete(&id).await.unwrap();
    assert_eq!(notes.get(&id).await.unwrap(), None);

    // Last-write documents replace their whole state.
    let people = inst.doc::<Person>();
    let ann = Person {
        handle: "ann".into(),
        name: Some("Ann".into()),
        links: vec![id.cid().clone()],
        extra: [("age".to_owned(), 40)].into(),
    };
    let ann_id = people.create(&ann).await.unwrap();
    people
        .update(&ann_id, |person| person.name = None)
        .await
        .unwrap();
    let read = people.get(&ann_id).await.unwrap().unwrap();
    assert_eq!(read.name, None);
    assert_eq!(read.extra, ann.extra);
    // An append-only type is not a document.
    assert!(matches!(
        inst.doc::<Comment>()
            .get(&Id::from_cid(id.cid().clone()))
            .await,
        Ok(None) | Err(_)
    ));
    inst.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_merge_of_typed_documents_across_two_instances() {
    let main = Instance::builder()
        .memory()
        .document::<Note>()
        .open()
        .await
        .unwrap();
    let listener = main.listen("tcp://127.0.0.1:0").await.unwrap();
    let id = main
        .doc::<Note>()
        .create(&note("n1", "plan"))
        .await
        .unwrap();
    let laptop = Instance::builder()
        .memory()
        .join(main.invite(Duration::from_secs(60)).await.unwrap())
        .open()
        .await
        .unwrap();
    // Apart, each edits another field.
    main.doc::<Note>()
        .update(&id, |note| note.title = "plan v2".into())
        .await
        .unwrap();
    laptop
        .doc::<Note>()
        .update(&id, |note| note.body = Some("details".into()))
        .await
        .unwrap();
    let mut watch = main.doc::<Note>().watch(&id).await.unwrap();
    assert_eq!(watch.snapshot().as_ref().unwrap().title, "plan v2");
    let link = laptop.connect(listener.url()).unwrap();
    link.established().await.unwrap();
    let merged = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if next.body.is_some() {
            break next;
        }
    };
    assert_eq!(merged.title, "plan v2");
    assert_eq!(merged.body.as_deref(), Some("details"));
    assert!(main.doc::<Note>().conflicts(&id).await.unwrap().is_empty());
    link.close().await;
    // The watch ends when the instance closes.
    main.close().await;
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_append_list_and_watch_in_order() {
    let inst = Instance::builder().memory().open().await.unwrap();
    let id = inst
        .doc::<Note>()
        .create(&note("n1", "with comments"))
        .await
        .unwrap();
    let comments = inst.collection::<Comment>(id.clone());
    let mut watch = comments.watch().await.unwrap();
    assert!(watch.snapshot().is_empty());
    let mut refs = Vec::new();
    for i in 0..5 {
        let comment = Comment {
            note: id.clone(),
            text: format!("comment {i}"),
            reply_to: refs.last().cloned(),
            clock: None,
            author: None,
        };
        refs.push(comments.append(&comment).await.unwrap());
    }
    for (i, expected) in refs.iter().enumerate() {
        let (cid, comment) = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&cid, expected);
        assert_eq!(comment.text, format!("comment {i}"));
        assert!(
            comment.clock.is_some() && comment.author.is_some(),
            "filled in"
        );
    }
    let listed = comments.list().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|(cid, _)| cid.clone())
            .collect::<Vec<_>>(),
        refs
    );
    let second_page = comments.page(Some(&refs[1]), 2).await.unwrap();
    assert_eq!(second_page.len(), 2);
    assert_eq!(second_page[0].0, refs[2]);
    // An entry must belong to the collection it is appended to.
    let other = inst
        .doc::<Note>()
        .create(&note("n2", "other"))
        .await
        .unwrap();
    let stray = Comment {
        note: other,
        text: "elsewhere".into(),
        reply_to: None,
        clock: None,
        author: None,
    };
    assert!(matches!(
        comments.append(&stray).await,
        Err(Error::Invalid(_))
    ));
    inst.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_filter_page_and_watch() {
    let inst = Instance::builder().memory().open().await.unwrap();
    let notes = inst.doc::<Note>();
    for i in 0..30 {
        let mut n = note(&format!("n{i:02}"), &format!("note {i}"));
        n.word_count = Some(i);
        notes.create(&n).await.unwrap();
    }
    let even = || {
        inst.query::<Note>()
            .filter(|note| note.word_count.unwrap_or(0) % 2 == 0)
            .limit(4)
    };
    let mut seen = Vec::new();
    let mut page = even().page().await.unwrap();
    loop {
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|(_, note)| note.word_count.unwrap()));
        match page.next.take() {
            Some(next) => page = even().after(next).page().await.unwrap(),
            None => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..30).step_by(2).collect::<Vec<u32>>());

    let mut watch = even().watch().await.unwrap();
    assert_eq!(watch.snapshot().items.len(), 4);
    let odd_id = notes.id_of(&note("n01", "")).unwrap();
    notes
        .update(&odd_id, |note| note.word_count = Some(100))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
    {
        QueryChange::Upsert(id, note) => {
            assert_eq!(id, odd_id);
            assert_eq!(note.word_count, Some(100));
        }
        other => panic!("{other:?}"),
    }
    notes.delete(&odd_id).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap(),
        QueryChange::Removed(id) if id == odd_id
    ));
    inst.close().await;
}

/// Another person who does not know a type yet: its entries of a granted note are not taken,
/// the app hears why (`Event::Refused`), and once it reads the type (which registers it) the
/// next sync brings them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_type_unknown_to_another_person_are_reported_then_taken() {
    let desk = Instance::builder()
        .memory()
        .document::<Note>()
        .document::<Comment>()
        .open()
        .await
        .unwrap();
    let listener = desk.listen("tcp://127.0.0.1:0").await.unwrap();
    let id = desk
        .doc::<Note>()
        .create(&note("n1", "shared"))
        .await
        .unwrap();
    let comment = desk
        .collection::<Comment>(id.clone())
        .append(&Comment {
            note: id.clone(),
            text: "hello".into(),
            reply_to: None,
            clock: None,
            author: None,
        })
        .await
        .unwrap();
    let friend = Instance::builder().memory().open().await.unwrap();
    let _grant = desk.grant(id.cid(), &friend.person()).await.unwrap();
    // Reading registers: the note is known before the first sync; comments are not.
    assert_eq!(friend.doc::<Note>().get(&id).await.unwrap(), None);
    let mut events = friend.events();
    friend
        .sync_once(listener.url(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(friend.doc::<Note>().get(&id).await.unwrap().is_some());
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap();
        if let chum::Event::Refused { refused, .. } = event
            && refused.iter().any(|(cid, _)| cid == comment.cid())
        {
            break;
        }
    }
    let comments = friend.collection::<Comment>(id.clone());
    assert!(comments.list().await.unwrap().is_empty());
    friend
        .sync_once(listener.url(), Duration::from_secs(10))
        .await
        .unwrap();
    let listed = comments.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, comment);
}
