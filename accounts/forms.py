"""Forms of the customer pages: they translate input; the services do the work."""

from django import forms

from .models import ApiKey, Invitation, Membership


class ApiKeyCreateForm(forms.Form):
    """The name of a new key; uniqueness within the organisation is checked by the service."""

    name = forms.CharField(
        label="Key name",
        max_length=ApiKey._meta.get_field("name").max_length,
        strip=True,
        help_text="For example the app or environment that will use it, such as “production”.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "placeholder": "production", "spellcheck": "false"}
        ),
    )


ROLE_CHOICES = [
    (Membership.Role.MEMBER, "Member: sees usage, keys and the team"),
    (Membership.Role.OWNER, "Owner: also manages keys and the team"),
]


class InvitationForm(forms.Form):
    """Whom to invite, and with which role; the service checks the rest."""

    email = forms.EmailField(
        label="Email address",
        max_length=Invitation._meta.get_field("email").max_length,
        widget=forms.EmailInput(attrs={"autocomplete": "off", "placeholder": "name@example.com"}),
    )
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, initial=Membership.Role.MEMBER)


class RoleForm(forms.Form):
    """A member's new role."""

    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices)


class InvitationSignUpForm(forms.Form):
    """A new person's username and password; the password rules are applied by the service."""

    username = forms.CharField(
        label="Username",
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    password1 = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return cleaned
