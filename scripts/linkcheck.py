#!/usr/bin/env python3
"""Fails on a broken link: in the built book (every href and src that stays inside
it, anchors included) and in the Markdown files given (relative links to files of
the repository). Links to other sites are not followed (nothing here is reachable
but the package registries)."""
import html.parser
import os
import re
import sys
import urllib.parse


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value:
                self.links.append(value)


def parse(path, cache={}):
    if path not in cache:
        p = Links()
        with open(path, encoding="utf-8") as f:
            p.feed(f.read())
        cache[path] = p
    return cache[path]


def external(link):
    return re.match(r"^[a-z][a-z0-9+.-]*:", link) is not None


def check_book(root):
    broken = []
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".html"):
                continue
            page = os.path.join(folder, name)
            for link in parse(page).links:
                # Absolute links are the site's own (404.html's "/"); print.html
                # repeats every page's links, already checked where they stand.
                if external(link) or link.startswith("/") or name == "print.html":
                    continue
                url = urllib.parse.urlparse(link)
                target = page if not url.path else os.path.normpath(
                    os.path.join(os.path.dirname(page), urllib.parse.unquote(url.path)))
                if os.path.isdir(target):
                    target = os.path.join(target, "index.html")
                if not os.path.exists(target):
                    broken.append(f"{page}: {link}: no such file")
                elif url.fragment and target.endswith(".html") and url.fragment not in parse(target).ids:
                    broken.append(f"{page}: {link}: no such anchor")
    return broken


def check_markdown(path):
    broken = []
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if external(link) or link.startswith("#"):
            continue
        target = os.path.join(os.path.dirname(path), urllib.parse.unquote(link.split("#")[0]))
        if not os.path.exists(target):
            broken.append(f"{path}: {link}: no such file")
    return broken


def main():
    book, *markdown = sys.argv[1:]
    broken = check_book(book)
    for path in markdown:
        broken += check_markdown(path)
    for line in broken:
        print(f"broken link: {line}", file=sys.stderr)
    if broken:
        sys.exit(1)
    print(f"linkcheck: every link in {book} and {', '.join(markdown) or 'no Markdown'} resolves")


if __name__ == "__main__":
    main()
