-- The blog's schema: users write posts, posts carry tags and comments, sessions keep people
-- logged in. Bodies are stored both as the Markdown the author wrote and as the sanitised HTML
-- rendered from it at write time, so that reads never render Markdown.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9_-]{3,32}$'),
    display_name  TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 64),
    password_hash TEXT NOT NULL,
    is_author     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE posts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug          TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]{1,120}$'),
    title         TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body_markdown TEXT NOT NULL,
    body_html     TEXT NOT NULL,
    excerpt       TEXT NOT NULL,
    author_id     BIGINT NOT NULL REFERENCES users (id),
    published_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    search        TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', body_markdown), 'B')
    ) STORED
);
-- Every listing (front, tag, author) is newest first; `id` breaks ties deterministically.
CREATE INDEX posts_published ON posts (published_at DESC, id DESC);
CREATE INDEX posts_author_published ON posts (author_id, published_at DESC, id DESC);
CREATE INDEX posts_search ON posts USING GIN (search);

CREATE TABLE tags (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9-]{1,32}$')
);

CREATE TABLE post_tags (
    post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    tag_id  BIGINT NOT NULL REFERENCES tags (id),
    PRIMARY KEY (post_id, tag_id)
);
CREATE INDEX post_tags_tag ON post_tags (tag_id, post_id);

CREATE TABLE comments (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id    BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id  BIGINT NOT NULL REFERENCES users (id),
    body       TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 5000),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX comments_post ON comments (post_id, created_at, id);

-- A session starts when someone opens a form (so the form can carry a CSRF token) and gains a
-- user when they log in. Only a hash of the cookie's token is stored.
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    user_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
