"""Generate a short-message data set for the text benchmarks: a TSV like an SMS spam collection.

Two unbalanced classes, ``ham`` (about 87 %) and ``spam`` (about 13 %), written as phones show
them: chat with abbreviations, typos, emoji and a little Spanish, French or German; legitimate
notifications (one-time codes, deliveries, bank alerts, appointments) that look like spam; and
spam that reads like chat (wrong-number openers, a "new number" from a friend). The words spam is
known for (free, win, prize, call, urgent, claim, account, links, amounts) appear in both
classes, so no single keyword separates them. Lengths are long-tailed like real SMS: most
messages have 5 to 30 words, about 8 % run to 60-150 words (long chats, forwards, small print).
About 1 % of the labels are flipped, as in hand-labelled sets. Deterministic for a given seed.

    python benchmarks/make_messages.py /tmp/messages.tsv --count 2000
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from collections.abc import Callable
from pathlib import Path

SPAM_SHARE = 0.12  # plus label noise: about 13 % of the labels say spam
LONG_SHARE = 0.08
LABEL_NOISE = 0.01

NAMES = "Anna Ben Chloe Dev Emma Farid Gina Hugo Ines Jon Kemal Lea Mia Nico Omar Priya Raj Sara"
PLACES = "the pub|Dani's|the gym|work|the station|mum's|the library|the cafe on 5th|Tesco|the park"
FOODS = "pizza|curry|tacos|sushi|pasta|a kebab|burgers|pho|dumplings"
SHOPS = "Amazon|DHL|Royal Mail|UPS|FedEx|Zalando|eBay|IKEA"
BANKS = "Barclays|HSBC|Chase|Monzo|Revolut|Santander|Wells Fargo"
BRANDS = "Apple|Netflix|PayPal|Vodafone|O2|EE|Spotify|Microsoft"
EMOJI = ["😂", "👍", "❤️", "🙄", "😅", "🎉", "😘", "🙏", "😬", "xx", ":)", ":(", ";)"]
LINKS = [
    "https://youtu.be/",
    "https://maps.app.goo.gl/",
    "https://forms.gle/",
    "www.bbc.co.uk/news/",
]
TLDS = ["top", "xyz", "info", "co", "live", "click", "shop"]

HAM_SHORT = [
    "ok see you at {time}",
    "cant talk now, in a meeting. call u later?",
    "did you get the milk",
    "haha that's hilarious {emoji}",
    "happy birthday {name}!! have a great one {emoji}",
    "running {n} min late sorry",
    "are you free tonight? thinking of {food}",
    "mum says dinner at {time}, dont be late",
    "I won the pub quiz lol, free drinks for the team",
    "call me when you get this, nothing urgent",
    "where did you park",
    "home now. that was a long day",
    "can you grab the table at {place}? we'll be there at {time}",
    "thx for yesterday, really needed that",
    "k",
    "lol no way",
    "yes pls",
    "sorry missed your call, was driving",
    "is the wifi down at yours too",
    "meet you outside {place}",
    "the kids are asleep finally {emoji}",
    "did {name} tell you about the party on saturday?",
    "got the tickets!! row F {emoji}",
    "text me when you land",
    "can u send me the photos from {place}",
    "I'll pick up {food} on the way home",
    "just saw your msg, yeah that works",
    "pls remind me to call the landlord tmrw",
    "que tal? vienes a cenar el viernes?",
    "on arrive dans {n} minutes, bisous",
    "bin gleich da, noch {n} min",
    "claim your seat at {place} before {name} takes it haha",
    "we won!!! 3-1 {emoji}",
    "you left your charger here",
    "prize for worst parking goes to you {emoji}",
    "free this weekend? hike maybe",
    "urgent: who has the spare key",
    "my account got locked again, can you log in for me and check the shared folder",
    "how much do I owe you for the tickets? £{amount}?",
    "coming to {place} later or nah",
    "look at this {link} {emoji}",
    "this is the place I told you about {link}",
    "can you fill in the form before friday? {link}",
    "won £{amount} on the scratch card lol, drinks on me",
    "the bank called about the mortgage, they want us to call back {weekday}",
]
OPENERS = ["hey", "hi {name}", "omg", "hiya", "morning!", "so", "{name}!", "ok so", "hola"]
CLOSERS = ["{emoji}", "x", "xx", "?", "lol", "love you", "ttyl", "cheers", "!!"]
HAM_NOTICE = [
    "Your verification code is {code}. Do not share it with anyone.",
    "{shop}: your parcel was delivered to your front door at {time}.",
    "Reminder: dentist appointment tomorrow at {time}. Reply C to cancel.",
    "{bank}: a payment of £{amount} to {brand} was made from your account ending {last4}.",
    "Your {brand} subscription renews on the {day}th. Manage it in the app.",
    "{shop}: your order has shipped and should arrive on {weekday}.",
    "Your table for 2 at {place} is booked for {time}. See you soon!",
    "{bank}: you have a new statement. Log in to the app to view it.",
    "GP surgery: your flu jab is due. Call the practice to book a free appointment.",
    "{school}: school photos are ready to order online at {link}",
    "{shop}: we missed you today. Choose a new delivery day at {link}",
    "Your prescription is ready to collect from the pharmacy.",
    "{brand}: your code to sign in is {code}. It expires in 10 minutes.",
    "Train {hour}:{n2} to the city is delayed by {n} minutes. We apologise.",
]
SPAM_SHORT = [
    "Congratulations! You have been selected to receive a £{amount} gift card. Claim at {url}",
    "URGENT: your {bank} account has been suspended. Verify your details at {url}",
    "{shop}: your package is on hold due to an unpaid fee of £1.{n}. Pay now: {url}",
    "You have WON a {brand} iPhone! Txt WIN to {short} to claim your prize",
    "FREE entry in our weekly draw! Text GO to {short} now. T&Cs apply, 18+",
    "hi is this {name}? sorry wrong number, but you seem nice. what do you do for work?",
    "Hey it's me, lost my phone, this is my new number. can you send me £{amount}, pay u back tmrw",
    "Earn £{amount}/day working from home, no experience needed. Reply YES for details",
    "Pre-approved loan up to £5000 at low rates. Text STOP to opt out",
    "{brand}: unusual sign-in detected. If this was not you, secure your account: {url}",
    "Final notice: your car warranty expires today. Call {phone} now",
    "Ur mobile no. has won £{amount} in our cash draw! call {phone} to claim, valid 12hrs",
    "hey babe, been a while. check out my new pics {url} {emoji}",
    "Your {brand} payment failed. Update your billing info within 24h: {url}",
    "HMRC: you are due a tax refund of £{amount}. Apply here {url}",
    "Crypto tip: this coin will 10x this week, join our group {url}",
    "Dear customer, your parcel could not be delivered. Reschedule: {url}",
    "Last chance! 70% off everything this weekend only, shop now {url}",
    "Hi {name}, your order #{code} is waiting for confirmation, reply Y to confirm",
    "Congrats on your new job offer! Pay the training fee of £{amount} to start monday",
]
HAM_LONG = [
    "so I finally talked to {name} about the flat",
    "the landlord says the boiler guy comes on {weekday} between 8 and 12",
    "honestly I don't know if I can keep doing these hours at work",
    "anyway the kids loved the zoo, the penguins were the highlight",
    "we should book the cottage again for the summer, same week as last year maybe",
    "I checked the bank app and the rent went out fine so no worries there",
    "{name} said the party is at {place} now because of the rain",
    "my phone has been acting up all week, so if I don't reply that's why",
    "also mum wants to know if you're coming for lunch on sunday, she's making {food}",
    "I won't be free until after 6 because of the dentist",
    "the train was cancelled again so I ended up getting a taxi, cost me £{amount}",
    "can you call me when you have a minute, nothing urgent, just want to talk it through",
    "forwarding this from the school group: pick up is at 3 on friday because of the staff day",
    "I got my exam results today and passed everything, still can't believe it {emoji}",
    "the account for the electricity is in my name so I'll sort the bill",
]
SPAM_LONG = [
    "Dear valued customer, we are pleased to inform you that your number was selected",
    "to receive an exclusive reward worth £{amount} as part of our customer appreciation week",
    "to claim, simply reply CLAIM or visit {url} and enter your details",
    "this offer is valid for 48 hours only and is limited to one claim per household",
    "standard network rates apply, messages cost £1.50 each, max 3 messages per week",
    "to unsubscribe text STOP to {short}, helpline {phone}, 18+ only",
    "our team of experts has helped thousands of people earn a second income from home",
    "all you need is a phone and 30 minutes a day, no experience or investment required",
    "spaces are limited and we only accept new members this month",
    "act now and receive a free starter pack worth £{amount} with your first order",
    "your personal advisor {name} is waiting for your reply",
    "terms and conditions apply, see {url} for full details of the promotion",
]


class Filler:
    """Fills the {slots} of a template with random but plausible values."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.slots: dict[str, Callable[[], str]] = {
            "name": lambda: rng.choice(NAMES.split()),
            "place": lambda: rng.choice(PLACES.split("|")),
            "food": lambda: rng.choice(FOODS.split("|")),
            "shop": lambda: rng.choice(SHOPS.split("|")),
            "bank": lambda: rng.choice(BANKS.split("|")),
            "brand": lambda: rng.choice(BRANDS.split("|")),
            "emoji": lambda: rng.choice(EMOJI),
            "time": lambda: f"{rng.randint(6, 11)}{rng.choice(['', ':30', ':15', 'pm', 'am'])}",
            "n": lambda: str(rng.randint(2, 45)),
            "hour": lambda: f"{rng.randint(6, 22):02d}",
            "school": lambda: rng.choice(["St Mary's", "Oakfield Primary", "Hillside Academy"]),
            "link": lambda: (
                rng.choice(LINKS) + "".join(rng.choices("abcdefghjkmnpqrstuvwxyz", k=5))
            ),
            "n2": lambda: f"{rng.randint(0, 59):02d}",
            "amount": lambda: str(rng.choice([5, 20, 50, 100, 150, 250, 500, 1000, 2000])),
            "code": lambda: str(rng.randint(100000, 999999)),
            "last4": lambda: f"{rng.randint(0, 9999):04d}",
            "day": lambda: str(rng.randint(4, 28)),
            "weekday": lambda: rng.choice(["monday", "tuesday", "wednesday", "thursday", "friday"]),
            "short": lambda: str(rng.randint(60000, 89999)),
            "phone": lambda: f"0{rng.randint(7000, 7999)} {rng.randint(100000, 999999)}",
            "url": self._url,
        }

    def _url(self) -> str:
        r = self.rng
        word = r.choice(["claim", "verify", "secure", "parcel", "reward", "login", "pay", "win"])
        host = f"{word}-{r.choice(SHOPS.split('|') + BRANDS.split('|')).lower()}"
        path = "".join(r.choice("abcdefghkmnpqrstuvwxyz23456789") for _ in range(6))
        return r.choice(
            [f"http://{host}.{r.choice(TLDS)}/{path}", f"bit.ly/{path}", f"www.{host}.com"]
        )

    def __call__(self, template: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: self.slots[m.group(1)](), template)


ABBREVIATIONS = {
    "you": "u",
    "your": "ur",
    "are": "r",
    "tonight": "2nite",
    "tomorrow": "tmrw",
    "please": "pls",
    "thanks": "thx",
    "because": "coz",
    "see": "c",
    "for": "4",
    "to": "2",
}


def texting_style(text: str, rng: random.Random, strength: float) -> str:
    """Abbreviations, a typo or two, dropped capitals and punctuation, as people type."""
    words = []
    for word in text.split(" "):
        low = word.lower()
        if low in ABBREVIATIONS and rng.random() < strength:
            word = ABBREVIATIONS[low]
        elif len(word) > 4 and word.isalpha() and rng.random() < 0.04 * strength:
            i = rng.randrange(len(word) - 1)
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swapped letters
        words.append(word)
    text = " ".join(words)
    if rng.random() < strength * 0.6:
        text = text.lower()
    if rng.random() < strength * 0.4:
        text = text.rstrip(".!?")
    return text


def long_message(parts: list[str], fill: Filler, rng: random.Random) -> str:
    """Sentences drawn from ``parts`` until a length of 60-150 words (long-tailed) is reached."""
    target = min(150, 60 + int(rng.expovariate(1 / 25)))
    order = rng.sample(parts, len(parts))
    sentences: list[str] = []
    while sum(len(s.split()) for s in sentences) < target:
        sentences.append(fill(order[len(sentences) % len(order)]))
    words = ". ".join(sentences).split()[:target]
    return " ".join(words) + rng.choice([".", "", "!", " x"])


def short_message(spam: bool, fill: Filler, rng: random.Random) -> str:
    """One chat line, notification or spam text of mostly 5-30 words."""
    if spam:
        text = fill(rng.choice(SPAM_SHORT))
        if rng.random() < 0.25:
            text = text.upper() if rng.random() < 0.3 else f"{text} {fill('{emoji}')}"
        return texting_style(text, rng, 0.3)
    if rng.random() < 0.15:
        return fill(rng.choice(HAM_NOTICE))
    text = fill(rng.choice(HAM_SHORT))
    if rng.random() < 0.35:
        text = f"{text}. {fill(rng.choice(HAM_SHORT))}"  # two thoughts in one message
    if rng.random() < 0.3:
        text = f"{fill(rng.choice(OPENERS))} {text}"
    if rng.random() < 0.3:
        text = f"{text} {fill(rng.choice(CLOSERS))}"
    return texting_style(text, rng, 0.6)


def messages(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` distinct (text, label) pairs in random order, SPAM_SHARE of them spam and
    LONG_SHARE of each class long."""
    rng = random.Random(seed)
    fill = Filler(rng)
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    n_spam = round(count * SPAM_SHARE)
    for spam, n_class in ((False, count - n_spam), (True, n_spam)):
        n_long = round(n_class * LONG_SHARE)
        for long, quota in ((True, n_long), (False, n_class - n_long)):
            made = 0
            while made < quota:
                if long:
                    text = long_message(SPAM_LONG if spam else HAM_LONG, fill, rng)
                else:
                    text = short_message(spam, fill, rng)
                key = " ".join(text.lower().split())
                if key in seen:
                    continue
                seen.add(key)
                made += 1
                label = spam != (rng.random() < LABEL_NOISE)
                rows.append((text, "spam" if label else "ham"))
    rng.shuffle(rows)
    return rows


def write_messages(dest: Path, *, count: int, seed: int = 0) -> Path:
    """Write a ``text<TAB>label`` TSV with a header row; return ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(messages(count, seed))
    return dest


def describe(rows: list[tuple[str, str]]) -> str:
    """One line: count, class shares and the word-count distribution."""
    words = sorted(len(t.split()) for t, _ in rows)
    spam = sum(1 for _, label in rows if label == "spam") / len(rows)
    long = sum(1 for n in words if n >= 60) / len(words)
    return (
        f"{len(rows)} messages, {1 - spam:.0%} ham / {spam:.0%} spam; words per message: "
        f"median {words[len(words) // 2]}, 90th percentile {words[int(len(words) * 0.9)]}, "
        f"max {words[-1]}; {long:.0%} have 60 words or more"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="the .tsv file to write")
    parser.add_argument("--count", type=int, default=2000, help="number of messages")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_messages(args.dest, count=args.count, seed=args.seed)
    print(f"wrote {args.dest}: {describe(messages(args.count, args.seed))}")


if __name__ == "__main__":
    main()
