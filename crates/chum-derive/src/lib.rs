//! `#[derive(Document)]` for chum: binds a Rust struct to a recipe. Use it through the `chum`
//! crate (`chum::Document`), which documents the attributes and re-exports this macro.
//!
//! The derive reads the struct's fields (and serde's `rename`, `rename_all` and `skip`, so the
//! recipe names the keys serde writes) and emits an `impl chum::Document` whose recipe takes
//! each field's kind from its Rust type through `chum::FieldKind`. It refuses, at compile time,
//! what cannot be a recipe: enums, unions, tuple and unit structs, generic structs,
//! `#[serde(flatten)]`, a field named `$type`, two fields with one name, a versioned strategy
//! without an `#[chum(id)]` field, and an append-only type with one.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Error, Fields, LitInt, LitStr, parse_macro_input};

/// Derives `chum::Document` for a struct with named fields. See `chum::Document`.
#[proc_macro_derive(Document, attributes(chum))]
pub fn derive_document(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// The container's `#[chum(…)]` and `#[serde(rename_all)]`.
struct Container {
    name: String,
    strategy: Option<(String, Span)>,
    version: u64,
    rename_all: Option<String>,
}

/// One field as the recipe sees it.
struct FieldSpec {
    key: String,
    ty: syn::Type,
    id: bool,
    collection: bool,
    span: Span,
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            _ => {
                return Err(Error::new(
                    input.ident.span(),
                    "a Document is a struct with named fields (its recipe names each field)",
                ));
            }
        },
        Data::Enum(_) | Data::Union(_) => {
            return Err(Error::new(
                input.ident.span(),
                "a Document is a struct with named fields, not an enum or union",
            ));
        }
    };
    if !input.generics.params.is_empty() {
        return Err(Error::new(
            input.generics.span(),
            "a Document cannot be generic: its recipe is one fixed type",
        ));
    }
    let container = container(input)?;
    let mut specs: Vec<FieldSpec> = Vec::new();
    for field in fields {
        if let Some(spec) = field_spec(field, container.rename_all.as_deref())? {
            if spec.key == "$type" {
                return Err(Error::new(
                    spec.span,
                    "`$type` is set by chum from the recipe name; remove this field",
                ));
            }
            if specs.iter().any(|other| other.key == spec.key) {
                return Err(Error::new(
                    spec.span,
                    format!("two fields are named {:?}", spec.key),
                ));
            }
            specs.push(spec);
        }
    }
    let has_id = specs.iter().any(|spec| spec.id);
    let (strategy, strategy_span) = match &container.strategy {
        Some((strategy, span)) => (strategy.clone(), *span),
        None if has_id => ("field-merge".to_owned(), input.ident.span()),
        None => ("append-only".to_owned(), input.ident.span()),
    };
    let variant = match strategy.as_str() {
        "field-merge" => quote!(FieldMerge),
        "last-write" => quote!(LastWrite),
        "append-only" => quote!(AppendOnly),
        "instance-local" => quote!(InstanceLocal),
        other => {
            return Err(Error::new(
                strategy_span,
                format!(
                    "unknown strategy {other:?}: use \"field-merge\", \"last-write\", \"append-only\" or \"instance-local\""
                ),
            ));
        }
    };
    if strategy == "append-only" && has_id {
        return Err(Error::new(
            strategy_span,
            "an append-only Document has no #[chum(id)] fields: each entry is its own immutable object",
        ));
    }
    if strategy != "append-only" && !has_id {
        return Err(Error::new(
            input.ident.span(),
            format!(
                "a {strategy} Document needs at least one #[chum(id)] field: the fields that name it across its versions"
            ),
        ));
    }
    let ident = &input.ident;
    let name = &container.name;
    let version = container.version;
    let fields = specs.iter().map(|spec| {
        let key = &spec.key;
        let ty = &spec.ty;
        let id = spec.id;
        let collection = spec.collection;
        quote! {
            let recipe = recipe.field(::chum::typed::field_of::<#ty>(#key, #id, #collection));
        }
    });
    Ok(quote! {
        impl ::chum::Document for #ident {
            const TYPE: &'static str = #name;
            fn recipe() -> ::chum::Recipe {
                let recipe = ::chum::Recipe::new(#name, ::chum::Strategy::#variant)
                    .with_version(#version);
                #(#fields)*
                recipe
            }
        }
    })
}

fn container(input: &DeriveInput) -> syn::Result<Container> {
    let mut container = Container {
        name: input.ident.to_string(),
        strategy: None,
        version: 1,
        rename_all: None,
    };
    for attr in &input.attrs {
        if attr.path().is_ident("chum") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    container.name = meta.value()?.parse::<LitStr>()?.value();
                    if container.name.is_empty() {
                        return Err(meta.error("the type name cannot be empty"));
                    }
                } else if meta.path.is_ident("strategy") {
                    let strategy: LitStr = meta.value()?.parse()?;
                    container.strategy = Some((strategy.value(), strategy.span()));
                } else if meta.path.is_ident("version") {
                    let version: LitInt = meta.value()?.parse()?;
                    container.version = version.base10_parse()?;
                    if container.version == 0 {
                        return Err(meta.error("recipe versions start at 1"));
                    }
                } else {
                    return Err(meta.error(
                        "unknown chum attribute: use name = \"…\", strategy = \"…\" or version = N",
                    ));
                }
                Ok(())
            })?;
        } else if attr.path().is_ident("serde") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename_all") {
                    let rule: LitStr = meta.value()?.parse()?;
                    if rename(&rule.value(), "x").is_none() {
                        return Err(Error::new(rule.span(), "unsupported rename_all rule"));
                    }
                    container.rename_all = Some(rule.value());
                    Ok(())
                } else if meta.path.is_ident("rename") {
                    container.name = meta.value()?.parse::<LitStr>()?.value();
                    Ok(())
                } else if ["transparent", "tag", "content", "untagged", "into", "from", "try_from", "remote"]
                    .iter()
                    .any(|name| meta.path.is_ident(name))
                {
                    Err(meta.error(
                        "this serde attribute changes the shape a Document serializes to: its recipe could not describe it",
                    ))
                } else {
                    skip_meta(&meta)
                }
            })?;
        }
    }
    Ok(container)
}

fn field_spec(field: &syn::Field, rename_all: Option<&str>) -> syn::Result<Option<FieldSpec>> {
    let Some(ident) = &field.ident else {
        return Err(Error::new(field.span(), "a Document's fields have names"));
    };
    let raw = ident.to_string();
    let raw = raw.strip_prefix("r#").unwrap_or(&raw).to_owned();
    let mut key = rename_all
        .and_then(|rule| rename(rule, &raw))
        .unwrap_or_else(|| raw.clone());
    let mut id = false;
    let mut collection = false;
    let mut skipped = false;
    for attr in &field.attrs {
        if attr.path().is_ident("chum") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("id") {
                    id = true;
                } else if meta.path.is_ident("collection") {
                    collection = true;
                } else {
                    return Err(meta.error("unknown chum field attribute: use id or collection"));
                }
                Ok(())
            })?;
        } else if attr.path().is_ident("serde") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    key = meta.value()?.parse::<LitStr>()?.value();
                    Ok(())
                } else if meta.path.is_ident("skip") {
                    skipped = true;
                    Ok(())
                } else if meta.path.is_ident("flatten") {
                    Err(meta.error(
                        "#[serde(flatten)] is not supported in a Document: its recipe lists every field",
                    ))
                } else if ["with", "serialize_with", "deserialize_with", "getter"]
                    .iter()
                    .any(|name| meta.path.is_ident(name))
                {
                    Err(meta.error(
                        "a custom serde function hides the field's kind from the recipe: use a type with a chum::FieldKind (e.g. chum::ByteBuf for bytes)",
                    ))
                } else if (meta.path.is_ident("skip_serializing")
                    || meta.path.is_ident("skip_serializing_if"))
                    && !is_option(&field.ty)
                {
                    Err(meta.error(
                        "a field left out when serializing must be an Option (its recipe field is then optional)",
                    ))
                } else {
                    skip_meta(&meta)
                }
            })?;
        }
    }
    if skipped {
        if id || collection {
            return Err(Error::new(
                field.span(),
                "a skipped field cannot be an ID or collection field",
            ));
        }
        return Ok(None);
    }
    Ok(Some(FieldSpec {
        key,
        ty: field.ty.clone(),
        id,
        collection,
        span: ident.span(),
    }))
}

/// Whether `ty` is written `Option<…>` (the only way the derive can see optionality).
fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(path)
        if path.qself.is_none()
            && path.path.segments.last().is_some_and(|segment| segment.ident == "Option"))
}

/// Consumes a serde attribute this derive does not need (`default`, `skip_serializing_if`,
/// `with`, …), whatever its shape.
fn skip_meta(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _: proc_macro2::Group = meta.input.parse()?;
    }
    Ok(())
}

/// serde's `rename_all` rules, for field names written in snake_case.
fn rename(rule: &str, field: &str) -> Option<String> {
    let words: Vec<&str> = field.split('_').filter(|word| !word.is_empty()).collect();
    let capitalised = |word: &str| {
        let mut chars = word.chars();
        chars.next().map_or_else(String::new, |first| {
            first.to_uppercase().collect::<String>() + chars.as_str()
        })
    };
    Some(match rule {
        "lowercase" => field.to_lowercase(),
        "UPPERCASE" => field.to_uppercase(),
        "snake_case" => field.to_owned(),
        "SCREAMING_SNAKE_CASE" => field.to_uppercase(),
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.to_uppercase().replace('_', "-"),
        "PascalCase" => words.iter().map(|word| capitalised(word)).collect(),
        "camelCase" => {
            let mut out = String::new();
            for (i, word) in words.iter().enumerate() {
                if i == 0 {
                    out.push_str(word);
                } else {
                    out.push_str(&capitalised(word));
                }
            }
            out
        }
        _ => return None,
    })
}
