"""``vbg-node admin seed-demo``: a few members, communities and threads in French, so the
interface can be tried at once. Idempotent: what already exists (by username,
community name or thread title) is kept, never duplicated or overwritten.

All people, places of work and situations are fictional; cases are anonymised the
way members are asked to anonymise theirs.
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from node import accounts, communities, threads
from node import settings as settings_module
from node.admin_commands import admin_command
from node.sessions import User


@dataclass(frozen=True)
class DemoMember:
    username: str
    display_name: str
    profession: str
    detail: str
    organisation: str
    country: str
    role: str = "member"


@dataclass(frozen=True)
class DemoThread:
    community: str
    author: str
    title: str
    body: str
    # (author, body, index of the reply answered or None for the thread)
    replies: list[tuple[str, str, int | None]] = field(default_factory=list)
    hours_ago: int = 24
    pinned: bool = False
    expert_answer: int | None = None  # index of the reply marked as the expert answer


MEMBERS = [
    DemoMember("mukendi", "Dr Josué Mukendi", "medical", "Médecin généraliste", "Hôpital de district (fictif), Bukavu", "RD Congo", "expert"),
    DemoMember("claire_d", "Claire Dumont", "psychosocial", "Psychologue clinicienne", "Centre d'accompagnement (fictif), Bruxelles", "Belgique", "expert"),
    DemoMember("awa_o", "Me Awa Ouédraogo", "juridique", "Juriste, aide juridictionnelle", "Clinique juridique (fictive), Ouagadougou", "Burkina Faso", "expert"),
    DemoMember("fatima_e", "Fatima El Amrani", "paramedical", "Sage-femme", "Maternité de quartier (fictive), Casablanca", "Maroc"),
    DemoMember("aissatou", "Aïssatou Diallo", "projet", "Coordinatrice de programme VBG", "ONG partenaire (fictive), Dakar", "Sénégal", "moderator"),
    DemoMember("pierre_k", "Pierre Kabore", "psychosocial", "Travailleur social", "Centre de jour (fictif), Bobo-Dioulasso", "Burkina Faso"),
]  # fmt: skip

COMMUNITIES = [
    ("medical", "Prise en charge médicale", "members", "mukendi",
     "Protocoles cliniques, kits post-exposition, certificats médicaux, orientation des survivantes.",
     "Aucune donnée permettant d'identifier une patiente : ni nom, ni date précise, ni lieu exact.\n"
     "Citez vos sources (OMS, protocoles nationaux) quand vous recommandez un traitement."),
    ("psychosocial", "Accompagnement psychosocial", "members", "claire_d",
     "Écoute, premiers secours psychologiques, groupes de parole, soin des équipes.",
     "Bienveillance entre collègues. Pas de récit détaillé de violences : résumez.\n"
     "Signalez aux modérateurs tout message qui vous semble exposer une personne."),
    ("juridique", "Aspects juridiques", "public", "awa_o",
     "Plaintes, certificats, délais, aide juridictionnelle, droits des survivantes selon les pays.",
     "Espace public : rien de confidentiel ici. Les réponses ne remplacent pas une consultation juridique."),
    ("coordination", "Coordination locale", "local", "aissatou",
     "Organisation interne du nœud : réunions, formations, référencements entre structures partenaires.",
     "Réservé aux membres de ce nœud ; rien n'est partagé avec les nœuds partenaires."),
]  # fmt: skip

THREADS = [
    DemoThread(
        "medical", "mukendi", "Bienvenue : comment utiliser cette communauté",
        "Bonjour à toutes et à tous,\n\nCette communauté sert à partager **protocoles** et **questions cliniques** "
        "autour de la prise en charge des survivantes de violences sexuelles.\n\n"
        "- anonymisez chaque cas (âge approximatif, pas de lieu précis) ;\n"
        "- indiquez votre contexte (structure, ressources disponibles) ;\n"
        "- les experts marquent la réponse de référence quand elle existe.",
        hours_ago=24 * 20, pinned=True,
    ),
    DemoThread(
        "medical", "fatima_e", "Délai pour la prophylaxie post-exposition (PEP) au-delà de 72 h ?",
        "Une patiente (la vingtaine) se présente à la maternité **96 heures** après une agression. "
        "Le kit PEP est disponible.\n\nFaut-il encore proposer la prophylaxie VIH, ou seulement la "
        "contraception d'urgence et le dépistage ?",
        replies=[
            ("mukendi", "Au-delà de 72 h, la PEP VIH n'est **plus recommandée** : l'efficacité n'est pas démontrée.\n\n"
             "En revanche :\n\n1. contraception d'urgence : le DIU au cuivre reste possible jusqu'à 5 jours ;\n"
             "2. dépistage VIH, syphilis, hépatite B, avec vaccination hépatite B si besoin ;\n"
             "3. traitement présomptif des IST ;\n4. certificat médical et orientation psychosociale.\n\n"
             "Voir les lignes directrices de l'OMS sur la prise en charge clinique des victimes de viol.", None),
            ("fatima_e", "Merci docteur. Nous n'avons pas de DIU au cuivre sur place : la pilule (ulipristal) "
             "reste-t-elle utile à 96 h ?", 0),
            ("mukendi", "Oui, l'ulipristal est indiqué jusqu'à 120 h. Notez l'heure exacte de la prise dans le dossier.", 1),
            ("aissatou", "Je relaie : notre partenaire logistique peut fournir des DIU au cuivre le mois prochain. "
             "Je vous mets en contact par message privé.", None),
        ],
        hours_ago=30, expert_answer=0,
    ),
    DemoThread(
        "medical", "mukendi", "Rédiger un certificat médical utile à la procédure",
        "Beaucoup de certificats que nous voyons passer sont inexploitables au tribunal. "
        "Quels éléments incluez-vous systématiquement ?\n\n| Élément | Obligatoire ? |\n|---|---|\n"
        "| Date et heure de l'examen | oui |\n| Description des lésions | oui |\n| Conclusion sur l'agression | **non** |",
        replies=[
            ("awa_o", "Côté juridique : surtout **pas** de conclusion sur la culpabilité ou le consentement. "
             "Décrire, dater, signer. L'ITT (incapacité totale de travail) si votre droit national la prévoit.", None),
        ],
        hours_ago=72,
    ),
    DemoThread(
        "psychosocial", "pierre_k", "Épuisement de l'équipe d'écoute après une série de cas lourds",
        "Notre petite équipe (4 personnes) enchaîne les entretiens difficiles depuis trois semaines. "
        "Deux collègues dorment mal et parlent de démissionner.\n\nQuels dispositifs de soutien avez-vous "
        "mis en place avec peu de moyens ?",
        replies=[
            ("claire_d", "Ce que vous décrivez ressemble à un **traumatisme vicariant**. Avec peu de moyens :\n\n"
             "- un temps de débriefing collectif hebdomadaire, cadré (45 min, pas de détails des récits) ;\n"
             "- une rotation pour que personne n'enchaîne plus de 3 entretiens lourds par jour ;\n"
             "- une supervision externe, même mensuelle et à distance.\n\nJe peux animer une supervision "
             "en visio pour votre équipe si cela vous aide.", None),
            ("pierre_k", "Merci beaucoup, oui, avec plaisir. Je vous écris en privé pour fixer une date.", 0),
            ("fatima_e", "Chez nous, le simple fait de bloquer la dernière heure du vendredi pour l'équipe a changé l'ambiance.", None),
        ],
        hours_ago=8, expert_answer=0,
    ),
    DemoThread(
        "psychosocial", "claire_d", "Groupes de parole : faut-il mélanger les âges ?",
        "Nous ouvrons un groupe de parole pour des survivantes adultes. Une adolescente de 16 ans "
        "souhaite y participer. Vos expériences ?",
        replies=[
            ("pierre_k", "Nous avons toujours séparé : les mineures ont un groupe à part, avec accord parental "
             "quand c'est possible et sans danger.", None),
        ],
        hours_ago=50,
    ),
    DemoThread(
        "juridique", "awa_o", "Délais de prescription : tableau comparatif par pays",
        "Je propose de tenir ici un tableau des délais de prescription pour les violences sexuelles.\n\n"
        "| Pays | Adulte | Mineur·e |\n|---|---|---|\n| Burkina Faso | à compléter | à compléter |\n"
        "| Belgique | à compléter | à compléter |\n\nMerci de citer le texte de loi pour chaque ligne.",
        replies=[
            ("claire_d", "Pour la Belgique, je vérifie avec notre juriste et je complète.", None),
            ("awa_o", "Merci Claire. Attention aux réformes récentes : indiquez l'année du texte.", 0),
        ],
        hours_ago=24 * 5, pinned=True,
    ),
    DemoThread(
        "juridique", "fatima_e", "Une survivante peut-elle porter plainte sans certificat médical ?",
        "Question fréquente à la maternité : beaucoup de femmes pensent que sans certificat, la plainte est impossible.",
        replies=[
            ("awa_o", "Oui, la plainte est **toujours recevable** sans certificat. Le certificat est un élément "
             "de preuve parmi d'autres (témoignages, messages, constatations ultérieures).", None),
        ],
        hours_ago=12, expert_answer=0,
    ),
    DemoThread(
        "coordination", "aissatou", "Réunion mensuelle des structures partenaires",
        "Prochaine réunion : premier jeudi du mois, 10 h, salle de l'ONG.\n\nOrdre du jour :\n\n"
        "1. circuit de référencement hôpital → écoute → clinique juridique ;\n2. formation des nouveaux membres ;\n"
        "3. questions diverses.",
        replies=[
            ("pierre_k", "Je serai présent. Pouvons-nous ajouter un point sur le transport des survivantes ?", None),
            ("aissatou", "Ajouté au point 3.", 0),
        ],
        hours_ago=4,
    ),
]  # fmt: skip

FOLLOWS = {
    "mukendi": ["medical", "juridique", "coordination"],
    "claire_d": ["psychosocial", "juridique"],
    "awa_o": ["juridique", "medical"],
    "fatima_e": ["medical", "psychosocial", "juridique"],
    "aissatou": ["medical", "psychosocial", "juridique", "coordination"],
    "pierre_k": ["psychosocial", "coordination"],
}

SELECT_USER = "SELECT id, username, display_name, role, status FROM users WHERE lower(username) = lower($1)"
SELECT_THREAD = "SELECT id FROM threads WHERE community_id = $1 AND title = $2"
INSERT_EXPERT = "INSERT INTO community_experts (community_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
INSERT_FOLLOW = "INSERT INTO community_follows (user_id, community_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
# Spread the demo over past days so lists and unread markers look lived in.
BACKDATE_POST = "UPDATE posts SET created_at = now() - make_interval(mins => $2) WHERE id = $1"
BACKDATE_THREAD = """
UPDATE threads SET created_at = now() - make_interval(mins => $2),
                   last_activity_at = now() - make_interval(mins => $3)
WHERE id = $1
"""


def _user(row: asyncpg.Record) -> User:
    return User(row["id"], row["username"], row["display_name"], row["role"], row["status"])


async def _ensure_member(conn: asyncpg.Connection, m: DemoMember, password: str) -> tuple[User, bool]:
    row = await conn.fetchrow(SELECT_USER, m.username)
    if row is not None:
        return _user(row), False
    await accounts.create_user(
        conn,
        m.username,
        password,
        display_name=m.display_name,
        role=m.role,
        profession=m.profession,
        profession_detail=m.detail,
        organisation=m.organisation,
        country=m.country,
        email=f"{m.username}@demo.invalid",
        audit_label="seed-demo",
    )
    return _user(await conn.fetchrow(SELECT_USER, m.username)), True


async def _ensure_community(
    conn: asyncpg.Connection, spec: tuple[str, ...], admin: User
) -> communities.Community:
    name, title, visibility, _expert, description, rules = spec
    found = await communities.find(conn, name)
    if found is not None:
        return found
    await communities.create_community(
        conn,
        name,
        title,
        description=description,
        rules=rules,
        visibility=visibility,
        created_by=admin.id,
        audit_label="seed-demo",
    )
    created = await communities.find(conn, name)
    assert created is not None
    return created


async def _ensure_thread(
    conn: asyncpg.Connection, spec: DemoThread, community: communities.Community, people: dict[str, User]
) -> bool:
    if await conn.fetchval(SELECT_THREAD, community.id, spec.title) is not None:
        return False
    created = await threads.create_thread(conn, community, people[spec.author], spec.title, spec.body)
    minutes = spec.hours_ago * 60
    await conn.execute(BACKDATE_POST, created.post_id, minutes)
    reply_ids: list[int] = []
    step = max(1, minutes // (len(spec.replies) + 1))
    for index, (author, body, parent) in enumerate(spec.replies):
        parent_id = reply_ids[parent] if parent is not None else None
        reply_id = await threads.create_reply(conn, created.thread_id, people[author], body, parent_id)
        await conn.execute(BACKDATE_POST, reply_id, minutes - step * (index + 1))
        reply_ids.append(reply_id)
    last = minutes - step * len(spec.replies)
    await conn.execute(BACKDATE_THREAD, created.thread_id, minutes, last)
    animator = people[COMMUNITY_EXPERTS[community.name]]
    if spec.pinned:
        await threads.set_pinned(conn, created.thread_id, animator, True)
    if spec.expert_answer is not None:
        await threads.set_expert_answer(conn, reply_ids[spec.expert_answer], animator, True)
    return True


COMMUNITY_EXPERTS = {spec[0]: spec[3] for spec in COMMUNITIES}


async def seed(conn: asyncpg.Connection, *, admin_password: str, member_password: str) -> dict[str, Any]:
    """Create what is missing of the demo; return what was created (for the report)."""
    admin_row = await conn.fetchrow(SELECT_USER, "admin")
    admin_created = admin_row is None
    if admin_created:
        await accounts.create_user(
            conn,
            "admin",
            admin_password,
            role="admin",
            display_name="Administration",
            audit_label="seed-demo",
        )
        admin_row = await conn.fetchrow(SELECT_USER, "admin")
    admin = _user(admin_row)
    people: dict[str, User] = {}
    created_members = []
    for m in MEMBERS:
        people[m.username], created = await _ensure_member(conn, m, member_password)
        if created:
            created_members.append(m.username)
    found = {spec[0]: await _ensure_community(conn, spec, admin) for spec in COMMUNITIES}
    for name, username in COMMUNITY_EXPERTS.items():
        await conn.execute(INSERT_EXPERT, found[name].id, people[username].id)
    for username, names in FOLLOWS.items():
        for name in names:
            await conn.execute(INSERT_FOLLOW, people[username].id, found[name].id)
    new_threads = 0
    for spec in THREADS:
        new_threads += await _ensure_thread(conn, spec, found[spec.community], people)
    return {
        "admin_created": admin_created,
        "members_created": created_members,
        "threads_created": new_threads,
    }


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password", help="mot de passe des membres de démonstration créés (aléatoire sinon)")
    p.add_argument("--admin-password", help="mot de passe du compte admin s'il est créé (aléatoire sinon)")


@admin_command("seed-demo", "remplir le nœud de données de démonstration (idempotent)", _args)
async def seed_demo(conn: Any, args: argparse.Namespace) -> None:
    admin_password = args.admin_password or secrets.token_urlsafe(12)
    member_password = args.password or secrets.token_urlsafe(12)
    report = await seed(conn, admin_password=admin_password, member_password=member_password)
    base_url = settings_module.load().base_url
    print(f"Données de démonstration prêtes : {base_url}")
    if report["admin_created"]:
        print(f"  admin : admin / {admin_password}  (notez-le : il ne sera plus affiché)")
    else:
        print("  admin : admin (compte existant, mot de passe inchangé)")
    members = ", ".join(f"{m.username} ({m.detail}, {m.country})" for m in MEMBERS)
    print(f"  membres : {members}")
    if report["members_created"]:
        print(f"  mot de passe des membres créés : {member_password}")
    else:
        print("  (membres existants, mots de passe inchangés)")
    print(f"  discussions créées : {report['threads_created']}")
