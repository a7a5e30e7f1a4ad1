//! The read pages (front, tag, author, post) and writing a post.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{AppState, Form, PageQuery, Query, Visitor, is_plausible_name, read_page};
use crate::caching::{self, Invalidation, SurrogateKeys, keys, ttl};
use crate::error::AppError;
use crate::models::comment::{self, Comment};
use crate::models::post::{self, Listing, NewPost, Post, PostList};
use crate::models::{tag, user};
use crate::views::{AuthorPage, FrontPage, NewPostPage, Pager, PostPage, TagPage};

/// A post and its comments: what the post page shows, cached as one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostWithComments {
    pub post: Post,
    pub comments: Vec<Comment>,
}

/// Page `page` of `listing`, through the cache; `None` when the tag does not exist or the page
/// is past the end.
async fn cached_listing(
    state: &AppState,
    listing: &Listing,
    page: u32,
) -> Result<Option<PostList>, AppError> {
    let db = &state.db;
    state
        .cache
        .get_or_load(&keys::listing(listing, page), ttl::LISTING, || async {
            if let Listing::Tag(name) = listing
                && !tag::exists(db, name).await?
            {
                return Ok(None);
            }
            let list = post::list(db, listing, page).await?;
            Ok((page == 1 || !list.posts.is_empty()).then_some(list))
        })
        .await
}

/// The post with this slug and its comments, through the cache.
pub async fn cached_post(state: &AppState, slug: &str) -> Result<PostWithComments, AppError> {
    if !is_plausible_name(slug) {
        return Err(AppError::NotFound);
    }
    let db = &state.db;
    state
        .cache
        .get_or_load(&keys::post(slug), ttl::POST, || async {
            let Some(post) = post::by_slug(db, slug).await? else {
                return Ok(None);
            };
            let comments = comment::for_post(db, post.id).await?;
            Ok(Some(PostWithComments { post, comments }))
        })
        .await?
        .ok_or(AppError::NotFound)
}

/// The user with this username, through the cache (users never change once created).
pub async fn cached_author(state: &AppState, username: &str) -> Result<user::User, AppError> {
    if !is_plausible_name(username) {
        return Err(AppError::NotFound);
    }
    state
        .cache
        .get_or_load(&keys::author(username), ttl::LISTING, || async {
            Ok(user::by_username(&state.db, username).await?)
        })
        .await?
        .ok_or(AppError::NotFound)
}

/// Page `page` of `listing` through the cache, with the surrogate keys naming what it shows
/// (the listing's own key — `author_id` names an author's — and each post's); a 404 when the
/// tag is malformed or unknown, or the page is past the end.
pub async fn listing_page(
    state: &AppState,
    listing: &Listing,
    author_id: Option<i64>,
    page: u32,
) -> Result<(PostList, SurrogateKeys), AppError> {
    if let Listing::Tag(name) = listing
        && !tag::is_valid_name(name)
    {
        return Err(AppError::NotFound);
    }
    let list = cached_listing(state, listing, page)
        .await?
        .ok_or(AppError::NotFound)?;
    let keys = list.posts.iter().fold(
        SurrogateKeys::new().listing(listing, author_id),
        |keys, post| keys.post(post.id),
    );
    Ok((list, keys))
}

/// `GET /`
#[tracing::instrument(skip_all, fields(page = query.page))]
pub async fn front(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (list, keys) = listing_page(&state, &Listing::Front, None, query.page()?).await?;
    let view = FrontPage {
        layout: visitor.layout(),
        pager: Pager::new("/?page=", &list),
        list,
    };
    read_page(&headers, &visitor, &keys, &view)
}

/// `GET /tags/{tag}`
#[tracing::instrument(skip_all, fields(%name, page = query.page))]
pub async fn tag(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let page = query.page()?;
    let listing = Listing::Tag(name.clone());
    let (list, keys) = listing_page(&state, &listing, None, page).await?;
    let view = TagPage {
        layout: visitor.layout(),
        pager: Pager::new(&format!("/tags/{name}?page="), &list),
        tag: name,
        list,
    };
    read_page(&headers, &visitor, &keys, &view)
}

/// `GET /authors/{username}`
#[tracing::instrument(skip_all, fields(%username, page = query.page))]
pub async fn author(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(username): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let page = query.page()?;
    let author = cached_author(&state, &username).await?;
    let listing = Listing::Author(username);
    let (list, keys) = listing_page(&state, &listing, Some(author.id), page).await?;
    let view = AuthorPage {
        layout: visitor.layout(),
        pager: Pager::new(&format!("/authors/{}?page=", author.username), &list),
        author,
        list,
    };
    read_page(&headers, &visitor, &keys, &view)
}

/// `GET /posts/{slug}`
#[tracing::instrument(skip_all, fields(%slug))]
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let PostWithComments { post, comments } = cached_post(&state, &slug).await?;
    let keys = SurrogateKeys::new().post(post.id);
    let view = PostPage {
        layout: visitor.layout(),
        post,
        comments,
        comment_draft: String::new(),
        comment_problems: Vec::new(),
    };
    read_page(&headers, &visitor, &keys, &view)
}

/// The fields of the new-post form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewPostForm {
    csrf_token: String,
    title: String,
    body: String,
    tags: String,
}

/// `GET /posts/new`
#[tracing::instrument(skip_all)]
pub async fn new_form(visitor: Visitor) -> Result<Response, AppError> {
    require_author(&visitor)?;
    let view = NewPostPage {
        layout: visitor.layout(),
        title: String::new(),
        body: String::new(),
        tags: String::new(),
        problems: Vec::new(),
    };
    super::private_page(StatusCode::OK, None, &view)
}

fn require_author(visitor: &Visitor) -> Result<&user::User, AppError> {
    let user = visitor.require_user()?;
    if user.is_author {
        Ok(user)
    } else {
        Err(AppError::Forbidden)
    }
}

/// `POST /posts/new`: publishes, invalidates every listing page the post shifts, redirects to
/// the post.
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<NewPostForm>,
) -> Result<Response, AppError> {
    let author = require_author(&visitor)?;
    visitor.check_csrf(&form.csrf_token)?;
    let new = match NewPost::parse(&form.title, &form.body, &form.tags) {
        Ok(new) => new,
        Err(problems) => {
            let view = NewPostPage {
                layout: visitor.layout(),
                title: form.title,
                body: form.body,
                tags: form.tags,
                problems,
            };
            return super::private_page(StatusCode::UNPROCESSABLE_ENTITY, None, &view);
        }
    };
    let post = post::create(&state.db, author.id, &new).await?;
    tracing::info!(post = post.id, slug = %post.slug, "post published");
    let mut page_counts = Vec::new();
    for listing in listings_of(&post) {
        let pages = post::page_count(&state.db, &listing).await?;
        page_counts.push((listing, pages));
    }
    caching::invalidate(
        &state.cache,
        &state.purger,
        Invalidation::new_post(&post, &page_counts),
    )
    .await;
    Ok(super::see_other(&format!("/posts/{}", post.slug), None))
}

/// Every listing that shows `post`: the front page, its tags' pages, its author's page.
pub fn listings_of(post: &Post) -> Vec<Listing> {
    let mut listings = vec![
        Listing::Front,
        Listing::Author(post.author_username.clone()),
    ];
    listings.extend(post.tags.iter().cloned().map(Listing::Tag));
    listings
}
