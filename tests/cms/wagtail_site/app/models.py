"""Page types of the test site, shaped like a typical Wagtail site's content.

`ArticlePage` is a StreamField article (headings with anchors, rich text, code, raw HTML): what the API
returns for it is the hard case for cmsrag's Wagtail source. `NotePage` keeps its text in a plain
`RichTextField`, the shape of older or simpler page types, so the source's fallback is tested on real data.
"""

from django.db import models
from django.utils.text import slugify
from wagtail import blocks
from wagtail.admin.panels import FieldPanel
from wagtail.api import APIField
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Page

RICH_TEXT_FEATURES = ["h2", "h3", "bold", "italic", "link", "document-link", "ol", "ul", "code", "image"]


class HeadingBlock(blocks.StructBlock):
    """A section heading; the page renders `id="<anchor or slugified text>"` so sections can be linked to."""

    text = blocks.CharBlock()
    anchor = blocks.CharBlock(required=False, help_text="Defaults to the slugified text.")
    level = blocks.ChoiceBlock(choices=[("h2", "H2"), ("h3", "H3"), ("h4", "H4")], default="h2")

    class Meta:
        template = "app/blocks/heading.html"

    def get_context(self, value, parent_context=None):
        context = super().get_context(value, parent_context)
        context["anchor"] = value.get("anchor") or slugify(value.get("text", ""))
        return context


class CodeBlock(blocks.StructBlock):
    """A code sample with its language, rendered as `<pre><code>`."""

    language = blocks.CharBlock(required=False)
    code = blocks.TextBlock()

    class Meta:
        template = "app/blocks/code.html"


class ArticlePage(Page):
    """An article whose body is a StreamField."""

    intro = models.CharField(max_length=500, blank=True)
    body = StreamField(
        [
            ("heading", HeadingBlock()),
            ("paragraph", blocks.RichTextBlock(features=RICH_TEXT_FEATURES)),
            ("code", CodeBlock()),
            ("raw", blocks.RawHTMLBlock()),
        ],
        blank=True,
    )

    # Tuples: Wagtail reads these as any sequence, and they must not be shared mutable lists.
    content_panels = (*Page.content_panels, FieldPanel("intro"), FieldPanel("body"))
    api_fields = (APIField("intro"), APIField("body"), APIField("last_published_at"))


class NotePage(Page):
    """A short note whose text is one rich-text field (no StreamField)."""

    text = RichTextField(blank=True, features=RICH_TEXT_FEATURES)

    content_panels = (*Page.content_panels, FieldPanel("text"))
    api_fields = (APIField("text"), APIField("last_published_at"))
