"""What each verb does, from Mastodon-, Lemmy-, PieFed-, Mbin- and NodeBB-shaped payloads
delivered over HTTP by fake instances to our node on loopback, then processed by the
worker: follows, threads, replies, edits, deletions, likes, reports — idempotent and
order-tolerant."""

from __future__ import annotations

from urllib.parse import urlsplit

from federation import actors
from federation.handlers import follow as follow_handler
from tests import inboxnode as ap
from tests.fakefedi import FakeInstance
from tests.helpers import make_community, make_user
from tests.inboxnode import InboxNode, deliver, fake_fixture, local_thread, node_fixture, outcome

fixture_node = node_fixture()


fixture_masto = fake_fixture("masto", "127.0.0.51")


fixture_lemmy = fake_fixture("lemmy", "127.0.0.52", "lemmy")


# -- Follow -------------------------------------------------------------------------------


async def test_follow_of_a_members_community_waits_for_the_instance_approval(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a members-only community and a Lemmy user of an instance not approved yet
    await make_community(node.pool, "psy", visibility="members")
    bob = lemmy.add_actor("bob")

    # When bob follows it
    await deliver(node, lemmy, ap.follow(lemmy, bob, node.group("psy")), bob)

    # Then the follow is pending and nothing is answered yet
    assert await node.count("community_followers", "state = 'pending'") == 1
    assert await node.events() == []

    # When a moderator approves bob's instance
    async with node.pool.acquire() as conn:
        accepted = await follow_handler.approve_instance(conn, lemmy.domain, None)

    # Then the follow is accepted and an Accept is queued, and the decision is audited
    assert accepted == 1
    assert await node.count("community_followers", "state = 'accepted'") == 1
    events = await node.events()
    assert [e["kind"] for e in events] == ["follow.accept"]
    assert events[0]["follow"]["actor"] == bob.id
    assert await node.count("audit_log", "action = 'instance.approve'") == 1


async def test_a_follow_from_an_approved_instance_is_accepted_at_once(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    await make_community(node.pool, "psy", visibility="members")
    async with node.pool.acquire() as conn:
        await follow_handler.approve_instance(conn, lemmy.domain, None)
    bob = lemmy.add_actor("bob")

    await deliver(node, lemmy, ap.follow(lemmy, bob, node.group("psy")), bob)

    assert await node.count("community_followers", "state = 'accepted'") == 1
    assert [e["kind"] for e in await node.events()] == ["follow.accept"]


async def test_a_refused_instance_gets_a_reject(node: InboxNode, lemmy: FakeInstance) -> None:
    await make_community(node.pool, "psy", visibility="members")
    bob = lemmy.add_actor("bob")
    await deliver(node, lemmy, ap.follow(lemmy, bob, node.group("psy")), bob)

    async with node.pool.acquire() as conn:
        assert await follow_handler.refuse_instance(conn, lemmy.domain, None) == 1

    assert await node.count("community_followers", "state = 'rejected'") == 1
    assert [e["kind"] for e in await node.events()] == ["follow.reject"]


async def test_undo_follow_matches_by_id_or_by_actor_and_object(node: InboxNode, masto: FakeInstance) -> None:
    # Given alice and carol follow a public community
    await make_community(node.pool, "juridique", visibility="public")
    alice, carol = masto.add_actor("alice"), masto.add_actor("carol")
    follow_a = ap.follow(masto, alice, node.group("juridique"))
    follow_c = ap.follow(masto, carol, node.group("juridique"))
    await deliver(node, masto, follow_a, alice)
    await deliver(node, masto, follow_c, carol)
    assert await node.count("community_followers") == 2

    # When alice undoes her Follow by id, and carol with a Follow re-created under another id
    await deliver(node, masto, ap.undo(masto, alice, follow_a), alice)
    bare = dict(ap.follow(masto, carol, node.group("juridique")))
    await deliver(node, masto, ap.undo(masto, carol, bare), carol)

    # Then neither follows any more
    assert await node.count("community_followers") == 0


async def test_follow_of_a_member_is_rejected(node: InboxNode, masto: FakeInstance) -> None:
    # Given a member whose actor the remote server has seen
    user_id = await make_user(node.pool, "amina")
    async with node.pool.acquire() as conn:
        await actors.ensure_local_actor(conn, node.settings, "Person", user_id=user_id)
    alice = masto.add_actor("alice")

    await deliver(node, masto, ap.follow(masto, alice, node.url("/u/amina")), alice, "/u/amina/inbox")

    assert await node.count("community_followers") == 0
    events = await node.events()
    assert [e["kind"] for e in events] == ["follow.reject"]
    assert events[0]["community_id"] is None and events[0]["local_actor_id"] is not None


async def test_follow_of_a_local_community_cannot_even_reach_it(node: InboxNode, masto: FakeInstance) -> None:
    await make_community(node.pool, "interne", visibility="local")
    alice = masto.add_actor("alice")

    await deliver(node, masto, ap.follow(masto, alice, node.group("interne")), alice)

    assert await node.count("community_followers") == 0
    assert [e["kind"] for e in await node.events()] == ["follow.reject"]


# -- Create -------------------------------------------------------------------------------


async def test_a_mastodon_note_mentioning_the_group_starts_a_thread(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a public community
    community_id = await make_community(node.pool, "medical", visibility="public")
    alice = masto.add_actor("alice")
    create = ap.mastodon_note(
        masto, alice, node.group("medical"), "Protocole d'accueil ?\nBonjour <script>x</script>"
    )

    # When a Mastodon toot mentioning the group arrives at the group's inbox
    await deliver(node, masto, create, alice, "/c/medical/inbox")

    # Then a thread exists, titled by the note's first line without the mention
    thread = await node.pool.fetchrow("SELECT * FROM threads")
    assert thread["title"] == "Protocole d'accueil ?"
    assert thread["community_id"] == community_id and thread["ap_id"] == create["object"]["id"]
    post = await node.pool.fetchrow("SELECT * FROM posts")
    assert post["is_opening"] and post["remote_author_id"] == thread["remote_author_id"]
    assert "<script>" not in post["content_html"] and "Bonjour" in post["content_html"]
    assert 'class="u-url mention"' in post["content_html"]
    # and the group relays the Create, and boosts the Page for Mastodon (public group)
    kinds = [e["kind"] for e in await node.events()]
    assert kinds == ["relay.announce", "relay.announce_page"]
    relayed = (await node.events("relay.announce"))[0]
    assert relayed["activity"] == create and relayed["community_id"] == community_id


async def test_a_lemmy_page_keeps_its_name_and_markdown_source(node: InboxNode, lemmy: FakeInstance) -> None:
    await make_community(node.pool, "juridique", visibility="public")
    bob = lemmy.add_actor("bob")
    create = ap.lemmy_page(lemmy, bob, node.group("juridique"), "Ordonnance de protection", "Texte **gras**")

    await deliver(node, lemmy, create, bob)

    thread = await node.pool.fetchrow("SELECT title FROM threads")
    post = await node.pool.fetchrow("SELECT source, content_html FROM posts")
    assert thread["title"] == "Ordonnance de protection"
    assert post["source"] == "Texte **gras**"
    found = await node.count("posts", "search_vector @@ plainto_tsquery('french', vbg_fold('ordonnance'))")
    assert found == 1


async def test_members_communities_take_posts_from_approved_instances_only(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    await make_community(node.pool, "psy", visibility="members")
    bob = lemmy.add_actor("bob")
    refused = ap.lemmy_page(lemmy, bob, node.group("psy"), "Avant approbation", "…")
    await deliver(node, lemmy, refused, bob)
    assert await node.count("threads") == 0
    assert (await outcome(node, refused))[0] == "ignored"

    async with node.pool.acquire() as conn:
        await follow_handler.approve_instance(conn, lemmy.domain, None)
    accepted = ap.lemmy_page(lemmy, bob, node.group("psy"), "Après approbation", "…")
    await deliver(node, lemmy, accepted, bob)

    assert await node.count("threads") == 1
    # members-only: relayed to followers, never boosted as a public Page
    assert [e["kind"] for e in await node.events()] == ["relay.announce"]


async def test_a_reply_its_author_addressed_to_a_few_is_never_boosted_by_id(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a local thread in a public community
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    alice = masto.add_actor("alice")
    # When a Mastodon reply to it comes addressed to its author and alice's followers only
    reply = ap.mastodon_note(
        masto, alice, node.url("/u/amina"), "Merci !", in_reply_to=node.url(f"/t/{thread_id}")
    )
    for doc in (reply, reply["object"]):
        doc["to"] = [node.url("/u/amina")]
    await deliver(node, masto, reply, alice, "/u/amina/inbox")
    # Then it joins the thread, but the group does not boost it to the world
    assert await node.pool.fetchval("SELECT reply_count FROM threads WHERE id = $1", thread_id) == 1
    assert [e["kind"] for e in await node.events()] == ["relay.announce"]


async def test_a_reply_to_our_post_arriving_at_a_members_inbox_joins_the_thread(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a local thread in a public community
    await make_community(node.pool, "medical", visibility="public")
    thread_id, post_id = await local_thread(node, "medical")
    alice = masto.add_actor("alice")
    # When a Mastodon reply to it, addressed to its author only, reaches the author's inbox
    reply = ap.mastodon_note(
        masto, alice, node.url("/u/amina"), "Merci !", in_reply_to=node.url(f"/t/{thread_id}")
    )

    await deliver(node, masto, reply, alice, "/u/amina/inbox")

    # Then it is a reply in that thread, and the group relays it, then boosts it by id (public)
    row = await node.pool.fetchrow(
        "SELECT id, thread_id, parent_id FROM posts WHERE ap_id = $1", reply["object"]["id"]
    )
    assert (row["thread_id"], row["parent_id"]) == (thread_id, post_id)
    assert await node.pool.fetchval("SELECT reply_count FROM threads WHERE id = $1", thread_id) == 1
    events = await node.events()
    assert [e["kind"] for e in events] == ["relay.announce", "relay.announce_object"]
    assert events[1]["post_id"] == row["id"]


async def test_a_reply_to_a_remote_post_we_store_joins_its_thread(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    await make_community(node.pool, "juridique", visibility="public")
    bob, eve = lemmy.add_actor("bob"), lemmy.add_actor("eve")
    page = ap.lemmy_page(lemmy, bob, node.group("juridique"), "Sujet", "Question")
    await deliver(node, lemmy, page, bob)

    comment = ap.lemmy_comment(lemmy, eve, node.group("juridique"), page["object"]["id"], "Réponse")
    await deliver(node, lemmy, comment, eve)

    assert await node.count("posts", "NOT is_opening") == 1
    assert await node.pool.fetchval("SELECT reply_count FROM threads") == 1


async def test_a_reply_to_a_locked_thread_is_ignored(node: InboxNode, masto: FakeInstance) -> None:
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    await node.pool.execute("UPDATE threads SET locked = true WHERE id = $1", thread_id)
    alice = masto.add_actor("alice")
    reply = ap.mastodon_note(
        masto, alice, node.group("medical"), "Tard", in_reply_to=node.url(f"/t/{thread_id}")
    )

    await deliver(node, masto, reply, alice)

    assert await node.count("posts", "NOT is_opening") == 0
    assert await outcome(node, reply) == ("ignored", "thread locked or deleted")


async def test_a_reply_whose_parent_has_not_arrived_waits_and_is_retried(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    await make_community(node.pool, "juridique", visibility="public")
    bob = lemmy.add_actor("bob")
    comment = ap.lemmy_comment(lemmy, bob, node.group("juridique"), lemmy.url("/post/404"), "Réponse")

    await deliver(node, lemmy, comment, bob)

    item = (await node.items())[0]
    assert item["status"] == "pending" and item["attempts"] == 1
    assert "parent post not known yet" in item["error"]


# -- Update, Delete -------------------------------------------------------------------------


async def test_the_author_edits_a_post_and_history_is_kept(node: InboxNode, lemmy: FakeInstance) -> None:
    await make_community(node.pool, "juridique", visibility="public")
    bob, eve = lemmy.add_actor("bob"), lemmy.add_actor("eve")
    create = ap.lemmy_page(lemmy, bob, node.group("juridique"), "Premier titre", "Premier texte")
    await deliver(node, lemmy, create, bob)

    edited = dict(create["object"], name="Nouveau titre", content="<p>Nouveau texte</p>",
                  source={"content": "Nouveau texte", "mediaType": "text/markdown"})  # fmt: skip
    await deliver(node, lemmy, ap.update_of(lemmy, bob, edited), bob)
    forged = dict(edited, attributedTo=eve.id, name="Volé")
    await deliver(node, lemmy, ap.update_of(lemmy, eve, forged), eve)

    assert await node.pool.fetchval("SELECT title FROM threads") == "Nouveau titre"
    assert await node.pool.fetchval("SELECT source FROM posts") == "Nouveau texte"
    history = await node.pool.fetchrow(
        "SELECT previous_title, previous_source, editor_actor_id FROM post_edits"
    )
    assert (history["previous_title"], history["previous_source"]) == ("Premier titre", "Premier texte")
    assert [e["kind"] for e in await node.events("relay.announce")] == ["relay.announce", "relay.announce"]


async def test_the_author_deletes_a_post(node: InboxNode, masto: FakeInstance) -> None:
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    alice, mallory = masto.add_actor("alice"), masto.add_actor("mallory")
    reply = ap.mastodon_note(
        masto, alice, node.group("medical"), "Oups", in_reply_to=node.url(f"/t/{thread_id}")
    )
    await deliver(node, masto, reply, alice)

    await deliver(node, masto, ap.delete_of(masto, mallory, reply["object"]["id"]), mallory)
    assert await node.count("posts", "deleted_at IS NOT NULL") == 0
    await deliver(node, masto, ap.delete_of(masto, alice, reply["object"]["id"]), alice)

    assert await node.count("posts", "deleted_at IS NOT NULL") == 1
    assert await node.pool.fetchval("SELECT reply_count FROM threads") == 0


async def test_a_delete_arriving_before_its_create_wins(node: InboxNode, masto: FakeInstance) -> None:
    await make_community(node.pool, "medical", visibility="public")
    alice = masto.add_actor("alice")
    create = ap.mastodon_note(masto, alice, node.group("medical"), "Jamais vu")

    await deliver(node, masto, ap.delete_of(masto, alice, create["object"]["id"]), alice)
    await deliver(node, masto, create, alice)

    assert await node.count("threads") == 0
    assert await outcome(node, create) == ("ignored", "object already deleted")
    assert await node.events() == []


async def test_an_actor_deleting_itself_takes_its_content_away(node: InboxNode, masto: FakeInstance) -> None:
    await make_community(node.pool, "medical", visibility="public")
    alice = masto.add_actor("alice")
    await deliver(node, masto, ap.mastodon_note(masto, alice, node.group("medical"), "Sujet"), alice)

    await deliver(node, masto, ap.delete_of(masto, alice, alice.id, tombstone=False), alice)

    assert await node.count("posts", "deleted_at IS NULL") == 0
    assert await node.count("threads", "deleted_at IS NULL") == 0
    assert await node.count("actors", "uri = $1 AND deleted_at IS NOT NULL", alice.id) == 1


async def test_an_actor_deleting_itself_leaves_the_reply_counts_of_the_threads_it_answered(
    node: InboxNode, masto: FakeInstance
) -> None:
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    opened_at = await node.pool.fetchval("SELECT last_activity_at FROM threads WHERE id = $1", thread_id)
    alice = masto.add_actor("alice")
    for text in ("Première réponse", "Seconde réponse"):
        reply = ap.mastodon_note(
            masto, alice, node.group("medical"), text, in_reply_to=node.url(f"/t/{thread_id}")
        )
        await deliver(node, masto, reply, alice)
    assert await node.pool.fetchval("SELECT reply_count FROM threads WHERE id = $1", thread_id) == 2

    await deliver(node, masto, ap.delete_of(masto, alice, alice.id, tombstone=False), alice)

    row = await node.pool.fetchrow(
        "SELECT reply_count, last_activity_at FROM threads WHERE id = $1", thread_id
    )
    assert row["reply_count"] == 0
    # last activity still counts the (now deleted) replies, as for a reply deleted on the forum
    assert row["last_activity_at"] >= opened_at


async def test_an_actor_update_refreshes_the_cached_actor(node: InboxNode, masto: FakeInstance) -> None:
    alice = masto.add_actor("alice")
    await make_community(node.pool, "medical", visibility="public")
    await deliver(node, masto, ap.follow(masto, alice, node.group("medical")), alice)
    alice.extra["name"] = "Alice Martin"

    update = ap.update_of(masto, alice, dict(alice.document(), name="Nom falsifié"))
    await deliver(node, masto, update, alice)

    # the copy embedded in the Update is not trusted: the actor is refetched
    assert (
        await node.pool.fetchval("SELECT display_name FROM actors WHERE uri = $1", alice.id) == "Alice Martin"
    )


# -- Like, Flag -----------------------------------------------------------------------------


async def test_likes_count_once_and_undo_removes_them(node: InboxNode, masto: FakeInstance) -> None:
    await make_community(node.pool, "medical", visibility="public")
    thread_id, post_id = await local_thread(node, "medical")
    alice = masto.add_actor("alice")
    liked = ap.like(masto, alice, node.url(f"/t/{thread_id}"))

    await deliver(node, masto, liked, alice)
    again = dict(ap.like(masto, alice, node.url(f"/t/{thread_id}")))
    await deliver(node, masto, again, alice)
    assert await node.pool.fetchval("SELECT likes_count FROM posts WHERE id = $1", post_id) == 1

    await deliver(node, masto, ap.undo(masto, alice, liked), alice)
    assert await node.pool.fetchval("SELECT likes_count FROM posts WHERE id = $1", post_id) == 0
    assert await node.count("post_likes") == 0
    assert len(await node.events("relay.announce")) == 2


async def test_an_undo_arriving_before_its_like_wins_and_dislikes_are_ignored(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    await make_community(node.pool, "medical", visibility="public")
    _, post_id = await local_thread(node, "medical")
    bob = lemmy.add_actor("bob")
    liked = ap.like(lemmy, bob, node.url(f"/p/{post_id}"))
    disliked = ap.like(lemmy, bob, node.url(f"/p/{post_id}"), kind="Dislike")

    await deliver(node, lemmy, ap.undo(lemmy, bob, liked), bob)
    await deliver(node, lemmy, liked, bob)
    await deliver(node, lemmy, disliked, bob)

    assert await node.pool.fetchval("SELECT likes_count FROM posts WHERE id = $1", post_id) == 0
    assert await outcome(node, liked) == ("ignored", "like already undone")
    assert (await outcome(node, disliked))[0] == "ignored"


async def test_a_flag_becomes_a_report_for_the_moderators(node: InboxNode, masto: FakeInstance) -> None:
    await make_community(node.pool, "medical", visibility="public")
    thread_id, post_id = await local_thread(node, "medical")
    reporter = masto.instance_actor
    flag = ap.flag(masto, reporter, [node.url("/u/amina"), node.url(f"/t/{thread_id}")], "Propos déplacés")

    await deliver(node, masto, flag, reporter)
    await masto.send(node.url("/inbox"), flag, actor=reporter)
    await node.process()

    report = await node.pool.fetchrow("SELECT * FROM reports")
    assert report["state"] == "open" and report["content"] == "Propos déplacés"
    assert report["post_ids"] == [post_id] and len(report["target_ids"]) == 2
    assert await node.count("reports") == 1


async def test_reports_from_an_instance_blocked_with_reject_reports_are_dropped(
    node: InboxNode, masto: FakeInstance
) -> None:
    from federation import policy

    # Given an instance silenced with reject_reports (it may still deliver to us)
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    async with node.pool.acquire() as conn:
        await policy.block_domain(
            conn, policy.BlockRequest(masto.domain, severity="silence", reject_reports=True)
        )
    reporter = masto.instance_actor
    flag = ap.flag(masto, reporter, [node.url(f"/t/{thread_id}")], "Signalement")
    # When it sends a report
    await deliver(node, masto, flag, reporter)
    # Then no report is filed
    assert await node.count("reports") == 0
    assert await outcome(node, flag) == (
        "ignored",
        "reports from this instance are rejected by the instance policy",
    )


# -- keys, announces, failures --------------------------------------------------------------


async def test_a_rotated_key_is_refetched_once(node: InboxNode, masto: FakeInstance) -> None:
    await make_community(node.pool, "medical", visibility="public")
    alice = masto.add_actor("alice")
    await deliver(node, masto, ap.follow(masto, alice, node.group("medical")), alice)

    # When alice's server rotates her key and signs with the new one
    from federation import signatures

    alice.private_pem, alice.public_pem = signatures.generate_key_pair()
    response = await masto.send(node.url("/inbox"), ap.like(masto, alice, node.url("/t/1")), actor=alice)

    assert response.status == 202
    assert (
        await node.pool.fetchval("SELECT public_key_pem FROM actors WHERE uri = $1", alice.id)
        == alice.public_pem
    )


async def test_a_group_relay_is_refetched_from_its_origin(
    node: InboxNode, masto: FakeInstance, lemmy: FakeInstance
) -> None:
    # Given a Mastodon reply to our thread, published on its server
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    alice = masto.add_actor("alice")
    reply = ap.mastodon_note(
        masto, alice, node.group("medical"), "Relayé", in_reply_to=node.url(f"/t/{thread_id}")
    )
    masto.add_object(reply)
    # When a Lemmy group relays it, with a tampered embedded copy
    group = lemmy.add_actor("tenforward", type="Group")
    tampered = dict(reply, object=dict(reply["object"], content="<p>Falsifié</p>"))
    announce = {"id": ap.activity_id(lemmy, "Announce"), "type": "Announce", "actor": group.id,
                "to": [ap.PUBLIC], "object": tampered}  # fmt: skip
    boost = {"id": ap.activity_id(lemmy, "Announce"), "type": "Announce", "actor": group.id,
             "to": [ap.PUBLIC], "object": node.url(f"/t/{thread_id}")}  # fmt: skip

    await deliver(node, lemmy, announce, group)
    await deliver(node, lemmy, boost, group)

    # Then the reply stored is the one fetched from its origin, and the boost is ignored
    content = await node.pool.fetchval(
        "SELECT content_html FROM posts WHERE ap_id = $1", reply["object"]["id"]
    )
    assert "Relayé" in content and "Falsifié" not in content
    assert (await outcome(node, boost))[0] == "ignored"


async def test_a_group_relay_from_the_activitys_own_server_is_used_as_embedded(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a reply to our thread by a member of a Lemmy instance, which its server does not serve
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    bob = lemmy.add_actor("bob")
    reply = ap.lemmy_comment(lemmy, bob, node.group("medical"), node.url(f"/t/{thread_id}"), "Relayée")
    # When that instance's group relays it (the group's server vouches for its own member)
    group = lemmy.add_actor("tenforward", type="Group")
    announce = {"id": ap.activity_id(lemmy, "Announce"), "type": "Announce", "actor": group.id,
                "to": [ap.PUBLIC], "object": reply}  # fmt: skip
    await deliver(node, lemmy, announce, group)
    # Then the embedded reply is stored, without fetching the relayed activity again
    content = await node.pool.fetchval(
        "SELECT content_html FROM posts WHERE ap_id = $1", reply["object"]["id"]
    )
    assert "Relayée" in content
    fetched = {r.path for r in lemmy.received if r.method == "GET"}
    assert urlsplit(reply["id"]).path not in fetched


async def test_a_failing_handler_is_recorded_and_retried_not_sent_back(
    node: InboxNode, masto: FakeInstance, lemmy: FakeInstance
) -> None:
    # Given a group relays another server's activity that its origin cannot serve (yet)
    group = lemmy.add_actor("tenforward", type="Group")
    bob = masto.add_actor("bob")
    lost = ap.lemmy_comment(masto, bob, node.group("medical"), node.url("/t/1"), "Perdu")
    announce = {"id": ap.activity_id(lemmy, "Announce"), "type": "Announce", "actor": group.id,
                "to": [ap.PUBLIC], "object": lost}  # fmt: skip

    response = await lemmy.send(node.url("/inbox"), announce, actor=group)
    await node.process()

    # Then the sender got 202, and the failure is recorded for a later attempt
    assert response.status == 202
    item = (await node.items())[0]
    assert (item["status"], item["attempts"]) == ("pending", 1)
    assert "remote answered 404" in item["error"]


async def test_our_own_activity_relayed_back_by_a_remote_group_is_ignored_without_a_fetch(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a Lemmy group that relays to every follower instance, ours included (Lemmy does)
    group = lemmy.add_actor("tenforward", type="Group")
    ours = {"id": node.url("/activities/1b2c"), "type": "Create", "actor": node.url("/u/amina"),
            "to": [ap.PUBLIC], "object": {"id": node.url("/p/77"), "type": "Note", "content": "<p>Salut</p>",
                                           "attributedTo": node.url("/u/amina"), "to": [ap.PUBLIC]}}  # fmt: skip
    announce = {"id": ap.activity_id(lemmy, "Announce"), "type": "Announce", "actor": group.id,
                "to": [ap.PUBLIC], "object": ours}  # fmt: skip
    # When its Announce of what our member wrote there arrives
    await deliver(node, lemmy, announce, group)
    # Then it is ignored, and nothing is fetched from ourselves
    assert await outcome(node, announce) == ("ignored", "our own activity, relayed back")
