"""French and English labels and dates: a small message catalogue, chosen from Accept-Language or the user's pick.

A missing French label falls back to the English one, and a missing key shows the key itself, so a gap is
visible in review instead of crashing a page.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LANGUAGES = ("en", "fr")
DEFAULT = "en"

EN: dict[str, str] = {
    "app.title": "carepath worklist", "nav.worklist": "Worklist", "nav.skip": "Skip to content",
    "dev.banner": "Development mode — no sign-in. You are the fixed development user.",
    "user.signed_in_as": "Signed in as", "user.logout": "Sign out", "lang.switch": "Language",
    "lang.en": "English", "lang.fr": "Français", "lang.apply": "Change",
    "signed_out.title": "Signed out", "signed_out.text": "You are signed out.", "signed_out.again": "Open the worklist",
    "filters.title": "Filters", "filters.apply": "Apply filters", "filters.reset": "Reset",
    "filter.status": "Status", "filter.owner": "Owner", "filter.role": "Performer role", "filter.priority": "Priority",
    "filter.patient": "Patient", "filter.due": "Due", "filter.any": "Any", "filter.mine": "My tasks",
    "filter.unassigned": "Unassigned",
    "status.open": "Open (to do)", "status.all": "All", "status.draft": "Waiting", "status.requested": "Requested",
    "status.received": "Received", "status.accepted": "Accepted", "status.ready": "Ready",
    "status.in-progress": "In progress", "status.on-hold": "On hold", "status.completed": "Completed",
    "status.cancelled": "Cancelled", "status.failed": "Failed", "status.rejected": "Rejected",
    "status.entered-in-error": "Entered in error",
    "priority.routine": "Routine", "priority.urgent": "Urgent", "priority.asap": "As soon as possible",
    "priority.stat": "Immediately (stat)",
    "due.overdue": "Overdue", "due.today": "Due today", "due.week": "Due this week", "due.upcoming": "Upcoming",
    "due.none": "No due date", "due.done": "Done", "due.closed": "Closed",
    "col.due": "Due", "col.owner": "Owner", "col.task": "Task", "col.patient": "Patient", "col.status": "Status",
    "col.priority": "Priority", "col.role": "Role",
    "worklist.heading": "Worklist", "worklist.count": "{n} tasks", "worklist.empty": "No task matches these filters.",
    "worklist.caption": "Tasks sorted by due date", "owner.none": "Unassigned", "page.previous": "Previous page",
    "page.next": "Next page", "page.of": "Page {n}", "live.updated": "The list has changed.",
    "live.reload": "Show the changes", "live.alert": "Alert: a task is overdue.", "live.alert.generic": "New alert.",
    "task.heading": "Task", "task.patient": "Patient", "task.pathway": "Pathway", "task.step": "Step",
    "task.why": "Why this task exists", "task.due": "Due", "task.owner": "Owner", "task.role": "Role",
    "task.status": "Status", "task.priority": "Priority", "task.waits_for": "Waits for",
    "task.waited_by": "Waiting for this task", "task.nothing": "Nothing", "task.notes": "Notes",
    "task.history": "History of status changes", "task.version": "Version", "history.when": "When",
    "history.who": "Who", "history.why": "Why", "history.status": "Status", "history.unknown": "not recorded",
    "task.actions": "Actions", "task.reason": "Reason (required)", "task.note": "Note (optional)",
    "task.assign_to": "Assign to", "task.no_actions": "No action is possible on a closed task.",
    "action.claim": "Claim (assign to me)", "action.assign": "Assign", "action.start": "Start",
    "action.complete": "Complete", "action.hold": "Put on hold", "action.resume": "Resume",
    "action.cancel": "Cancel the task", "action.reject": "Reject",
    "done.claim": "You now own this task.", "done.assign": "The task was assigned.",
    "done.start": "The task is in progress.", "done.complete": "The task is completed.",
    "done.hold": "The task is on hold.", "done.resume": "The task was resumed.",
    "done.cancel": "The task was cancelled.",
    "done.reject": "The task was rejected.",
    "error.refused": "This change was refused", "error.conflict": "Someone else changed this task while you were "
    "working on it (it is now at version {version}). Your change was not saved: the task below is the current "
    "one and what you typed is kept in the form — check it and submit again.",
    "error.reason_required": "A reason is needed to {action}.", "error.csrf": "This form has expired. Reload the "
    "page and try again.", "error.owner_required": "Choose whom to assign the task to.",
    "error.title": "Error", "error.back": "Back to the worklist",
    "error.forbidden": "Your sign-in does not allow this page (its scopes do not grant what it reads or changes).",
    "signin.failed": "Sign-in failed",
    "signin.not_configured": "Sign-in is not configured on this server (CAREPATH_APP_OIDC_CLIENT_ID).",
    "devissuer.title": "Development sign-in", "devissuer.who": "Sign in as",
    "devissuer.note": "Development issuer (CAREPATH_AUTH=dev): no password, local use only.",
    "devissuer.nobody": "No Practitioner is stored yet (run carepath demo).",
    "devissuer.scopes": "Scopes granted", "devissuer.sign_in": "Sign in",
    "devissuer.patient": "Patient launch context (patient/ scopes; optional)",
    "patient.heading": "Patient", "patient.careplans": "Care plans", "patient.timeline": "Timeline",
    "patient.pathway": "Pathway diagram", "patient.no_careplan": "No care plan for this patient.",
    "patient.tasks": "Tasks", "patient.born": "Born", "careplan.status": "Care plan status",
    "careplan.created": "Created",
    "timeline.title": "Timeline of {n} tasks: {done} done, {due} due, {late} late",
    "timeline.today": "today", "timeline.done": "done", "timeline.due": "due", "timeline.late": "late",
    "timeline.closed": "closed",
    "diagram.title": "Pathway {name}: {n} steps and their dependencies",
    "step.not-applicable": "not applicable", "step.waiting": "waiting", "step.ready": "ready",
    "step.in-progress": "in progress", "step.on-hold": "on hold", "step.done": "done", "step.overdue": "overdue",
    "step.closed": "cancelled", "legend": "Legend", "legend.hold": "solid arrow: waits for",
    "legend.informs": "dotted arrow: informs (never blocks)",
}  # fmt: skip

FR: dict[str, str] = {
    "app.title": "carepath — liste de travail", "nav.worklist": "Liste de travail", "nav.skip": "Aller au contenu",
    "dev.banner": "Mode développement — sans connexion. Vous êtes l'utilisateur de développement fixe.",
    "user.signed_in_as": "Connecté en tant que", "user.logout": "Se déconnecter", "lang.switch": "Langue",
    "lang.en": "English", "lang.fr": "Français", "lang.apply": "Changer",
    "signed_out.title": "Déconnecté", "signed_out.text": "Vous êtes déconnecté.",
    "signed_out.again": "Ouvrir la liste de travail",
    "filters.title": "Filtres", "filters.apply": "Appliquer les filtres", "filters.reset": "Réinitialiser",
    "filter.status": "Statut", "filter.owner": "Responsable", "filter.role": "Rôle de l'intervenant",
    "filter.priority": "Priorité", "filter.patient": "Patient", "filter.due": "Échéance", "filter.any": "Tous",
    "filter.mine": "Mes tâches", "filter.unassigned": "Non attribuées",
    "status.open": "Ouvertes (à faire)", "status.all": "Toutes", "status.draft": "En attente",
    "status.requested": "Demandée", "status.received": "Reçue", "status.accepted": "Acceptée", "status.ready": "Prête",
    "status.in-progress": "En cours", "status.on-hold": "Suspendue", "status.completed": "Terminée",
    "status.cancelled": "Annulée", "status.failed": "Échouée", "status.rejected": "Refusée",
    "status.entered-in-error": "Saisie par erreur",
    "priority.routine": "Normale", "priority.urgent": "Urgente", "priority.asap": "Dès que possible",
    "priority.stat": "Immédiate",
    "due.overdue": "En retard", "due.today": "Pour aujourd'hui", "due.week": "Cette semaine", "due.upcoming": "À venir",
    "due.none": "Sans échéance", "due.done": "Faite", "due.closed": "Close",
    "col.due": "Échéance", "col.owner": "Responsable", "col.task": "Tâche", "col.patient": "Patient",
    "col.status": "Statut", "col.priority": "Priorité", "col.role": "Rôle",
    "worklist.heading": "Liste de travail", "worklist.count": "{n} tâches",
    "worklist.empty": "Aucune tâche ne correspond à ces filtres.", "worklist.caption": "Tâches triées par échéance",
    "owner.none": "Non attribuée", "page.previous": "Page précédente", "page.next": "Page suivante",
    "page.of": "Page {n}", "live.updated": "La liste a changé.", "live.reload": "Afficher les changements",
    "live.alert": "Alerte : une tâche est en retard.", "live.alert.generic": "Nouvelle alerte.",
    "task.heading": "Tâche", "task.patient": "Patient", "task.pathway": "Parcours", "task.step": "Étape",
    "task.why": "Pourquoi cette tâche existe", "task.due": "Échéance", "task.owner": "Responsable",
    "task.role": "Rôle", "task.status": "Statut", "task.priority": "Priorité", "task.waits_for": "Attend",
    "task.waited_by": "Ce qui attend cette tâche", "task.nothing": "Rien", "task.notes": "Notes",
    "task.history": "Historique des changements de statut", "task.version": "Version", "history.when": "Quand",
    "history.who": "Qui", "history.why": "Pourquoi", "history.status": "Statut", "history.unknown": "non enregistré",
    "task.actions": "Actions", "task.reason": "Motif (obligatoire)", "task.note": "Note (facultative)",
    "task.assign_to": "Attribuer à", "task.no_actions": "Aucune action n'est possible sur une tâche close.",
    "action.claim": "Prendre (me l'attribuer)", "action.assign": "Attribuer", "action.start": "Commencer",
    "action.complete": "Terminer", "action.hold": "Suspendre", "action.resume": "Reprendre",
    "action.cancel": "Annuler la tâche", "action.reject": "Refuser",
    "done.claim": "Cette tâche vous est attribuée.", "done.assign": "La tâche a été attribuée.",
    "done.start": "La tâche est en cours.", "done.complete": "La tâche est terminée.",
    "done.hold": "La tâche est suspendue.", "done.resume": "La tâche a repris.", "done.cancel": "La tâche est annulée.",
    "done.reject": "La tâche est refusée.",
    "error.refused": "Ce changement a été refusé", "error.conflict": "Quelqu'un d'autre a modifié cette tâche "
    "pendant que vous y travailliez (elle est maintenant à la version {version}). Votre changement n'a pas été "
    "enregistré : la tâche ci-dessous est la version actuelle et ce que vous avez saisi est conservé dans le "
    "formulaire — vérifiez-le et validez à nouveau.",
    "error.reason_required": "Un motif est nécessaire pour : {action}.", "error.csrf": "Ce formulaire a expiré. "
    "Rechargez la page et réessayez.", "error.owner_required": "Choisissez à qui attribuer la tâche.",
    "error.title": "Erreur", "error.back": "Retour à la liste de travail",
    "error.forbidden": "Votre connexion ne permet pas cette page (ses droits n'accordent pas ce qu'elle lit ou "
    "modifie).",
    "signin.failed": "Échec de la connexion",
    "signin.not_configured": "La connexion n'est pas configurée sur ce serveur (CAREPATH_APP_OIDC_CLIENT_ID).",
    "devissuer.title": "Connexion de développement", "devissuer.who": "Se connecter en tant que",
    "devissuer.note": "Émetteur de développement (CAREPATH_AUTH=dev) : sans mot de passe, usage local seulement.",
    "devissuer.nobody": "Aucun Practitioner n'est encore enregistré (lancez carepath demo).",
    "devissuer.scopes": "Droits accordés", "devissuer.sign_in": "Se connecter",
    "devissuer.patient": "Contexte patient (droits patient/ ; facultatif)",
    "patient.heading": "Patient", "patient.careplans": "Plans de soins", "patient.timeline": "Chronologie",
    "patient.pathway": "Schéma du parcours", "patient.no_careplan": "Aucun plan de soins pour ce patient.",
    "patient.tasks": "Tâches", "patient.born": "Né(e) le", "careplan.status": "Statut du plan de soins",
    "careplan.created": "Créé le",
    "timeline.title": "Chronologie de {n} tâches : {done} faites, {due} à faire, {late} en retard",
    "timeline.today": "aujourd'hui", "timeline.done": "faite", "timeline.due": "à faire", "timeline.late": "en retard",
    "timeline.closed": "close",
    "diagram.title": "Parcours {name} : {n} étapes et leurs dépendances",
    "step.not-applicable": "non applicable", "step.waiting": "en attente", "step.ready": "prête",
    "step.in-progress": "en cours", "step.on-hold": "suspendue", "step.done": "faite", "step.overdue": "en retard",
    "step.closed": "annulée", "legend": "Légende", "legend.hold": "flèche pleine : attend",
    "legend.informs": "flèche pointillée : informe (ne bloque jamais)",
}  # fmt: skip

CATALOGUE = {"en": EN, "fr": FR}
_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "fr": ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."),
}


class Translator:
    """`t("key", n=3)`: the label in the page's language, with `{placeholders}` filled."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in CATALOGUE else DEFAULT

    def __call__(self, key: str, **values: object) -> str:
        text = CATALOGUE[self.lang].get(key) or EN.get(key) or key
        return text.format(**values) if values else text


def negotiate(accept_language: str | None, chosen: str | None = None) -> str:
    """The user's pick if valid, else the best of Accept-Language (RFC 9110 q-values), else English."""
    if chosen in LANGUAGES:
        return chosen
    best, best_q = DEFAULT, 0.0
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q - position * 1e-6 > best_q:
            best, best_q = primary, q - position * 1e-6
    return best


def format_date(moment: datetime | None, lang: str, tz: ZoneInfo, *, with_time: bool = True) -> str:
    """`1 Dec 2026, 14:30` / `1 déc. 2026 à 14:30`, in the hospital's time zone."""
    if moment is None:
        return ""
    local = moment.astimezone(tz)
    months = _MONTHS.get(lang, _MONTHS[DEFAULT])
    day = f"{local.day} {months[local.month - 1]} {local.year}"
    if not with_time:
        return day
    clock = f"{local.hour:02d}:{local.minute:02d}"
    return f"{day} à {clock}" if lang == "fr" else f"{day}, {clock}"
