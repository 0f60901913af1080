# ruff: noqa: E501  (one message per line reads better than wrapped strings)
"""The consent page's messages in Catalan, Spanish and English (merged over the pages' own).

Keys are ``oauth.*``; the page template is ``oauth_consent.html`` beside the other templates.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from federation.instance.web.messages import CATALOGUE

_CA: dict[str, str] = {
    "oauth.title": "Autoritza una aplicació",
    "oauth.intro": "L'aplicació «{client}» vol fer servir el teu compte {user} a {site}.",
    "oauth.vouched_by": "Identificador de l'aplicació (el publica {host})",
    "oauth.website": "Web de l'aplicació",
    "oauth.returns_to": "Quan responguis, tornaràs a {host}.",
    "oauth.asks": "Demana permís per:",
    "oauth.scope.read": "veure la teva activitat, també els teus suports privats i la teva safata d'entrada",
    "oauth.scope.write": "actuar en nom teu: fer propostes, debats i comentaris, i donar o retirar suports",
    "oauth.trust": "Autoritza-la només si confies en aquesta aplicació: l'accés dura fins que en tanquis la sessió a l'aplicació.",
    "oauth.allow": "Autoritza",
    "oauth.deny": "No l'autoritzis",
    "oauth.refused": "No es pot autoritzar aquesta aplicació: {detail}",
}

_ES: dict[str, str] = {
    "oauth.title": "Autoriza una aplicación",
    "oauth.intro": "La aplicación «{client}» quiere usar tu cuenta {user} en {site}.",
    "oauth.vouched_by": "Identificador de la aplicación (lo publica {host})",
    "oauth.website": "Web de la aplicación",
    "oauth.returns_to": "Cuando respondas, volverás a {host}.",
    "oauth.asks": "Pide permiso para:",
    "oauth.scope.read": "ver tu actividad, también tus apoyos privados y tu bandeja de entrada",
    "oauth.scope.write": "actuar en tu nombre: hacer propuestas, debates y comentarios, y dar o retirar apoyos",
    "oauth.trust": "Autorízala solo si confías en esta aplicación: el acceso dura hasta que cierres la sesión en la aplicación.",
    "oauth.allow": "Autorizar",
    "oauth.deny": "No autorizar",
    "oauth.refused": "No se puede autorizar esta aplicación: {detail}",
}

_EN: dict[str, str] = {
    "oauth.title": "Authorise an app",
    "oauth.intro": "The app “{client}” wants to use your account {user} on {site}.",
    "oauth.vouched_by": "App identifier (published by {host})",
    "oauth.website": "App website",
    "oauth.returns_to": "When you answer, you go back to {host}.",
    "oauth.asks": "It asks to:",
    "oauth.scope.read": "see your activity, including your private supports and your inbox",
    "oauth.scope.write": "act in your name: make proposals, debates and comments, and give or withdraw supports",
    "oauth.trust": "Only allow it if you trust this app: its access lasts until you log out of it.",
    "oauth.allow": "Allow",
    "oauth.deny": "Deny",
    "oauth.refused": "This app cannot be authorised: {detail}",
}

OAUTH_MESSAGES: Mapping[str, Mapping[str, str]] = {"ca": _CA, "es": _ES, "en": _EN}


@functools.cache
def consent_catalogue() -> Mapping[str, Mapping[str, str]]:
    """The pages' catalogue with the consent page's messages added, per language."""
    return {
        lang: {**messages, **OAUTH_MESSAGES.get(lang, {})} for lang, messages in CATALOGUE.items()
    }
