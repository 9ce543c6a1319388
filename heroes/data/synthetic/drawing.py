"""Procedural drawing of one superhero or ordinary person per image with Pillow: pure functions of a Generator."""

import colorsys
import math
from dataclasses import dataclass

import numpy
from PIL import Image, ImageDraw, ImageFilter

from heroes.config import CLASSES

# Draw at twice the size and reduce: cheap anti-aliasing for polygon edges.
SUPERSAMPLE = 2
HERO_CLASSES = tuple(label for label in CLASSES if label != "not_a_hero")
BLACK = (22, 22, 26)
WHITE = (240, 240, 236)
GOLD = (236, 190, 40)
YELLOW = (250, 214, 30)
SKIN_TONES = ((255, 224, 196), (241, 194, 150), (224, 172, 120), (198, 134, 90), (160, 105, 70),
              (120, 78, 50), (92, 60, 40), (236, 188, 160))
HAIR_COLOURS = ((25, 20, 20), (60, 40, 25), (105, 68, 40), (220, 185, 100), (160, 70, 30), (150, 150, 150))
HAIR_STYLES = ("short", "short", "long", "bob", "bald", "spiky")
# Backgrounds are somewhat muted, like real photos, so the figure's colours carry some (not all) signal.
BACKGROUND_HSV = ((0.0, 0.35), (0.35, 0.85))
# Half the pictures are close-ups, as in scraped photos, where the costume fills much of the frame.
CLOSE_UP_SHARE = 0.5
# A bat silhouette in a [-1, 1] box, y downwards: wings, ears, scalloped lower edge.
BAT = ((-1.0, -0.2), (-0.62, -0.36), (-0.3, -0.22), (-0.16, -0.12), (-0.13, -0.46), (-0.06, -0.2),
       (0.06, -0.2), (0.13, -0.46), (0.16, -0.12), (0.3, -0.22), (0.62, -0.36), (1.0, -0.2),
       (0.84, 0.06), (0.66, 0.0), (0.52, 0.22), (0.36, 0.1), (0.22, 0.3), (0.1, 0.2), (0.0, 0.46),
       (-0.1, 0.2), (-0.22, 0.3), (-0.36, 0.1), (-0.52, 0.22), (-0.66, 0.0), (-0.84, 0.06))


@dataclass(frozen=True)
class Look:
    """Colours and accessories of one figure; the body drawing is shared by every class."""

    skin: tuple
    torso: tuple
    abdomen: tuple
    upper_arm: tuple
    forearm: tuple
    hand: tuple
    thigh: tuple
    shin: tuple
    foot: tuple
    pelvis: tuple
    neck: tuple
    head: str = "face"  # face | cowl | mask
    head_colour: tuple = BLACK
    hair: tuple = HAIR_COLOURS[0]
    hair_style: str = "short"  # short | long | bob | bald | spiky | curl
    cape: tuple | None = None
    cape_length: float = 0.85
    scallops: bool = False
    belt: tuple | None = None
    pouches: bool = False
    emblem: str | None = None  # bat | shield | star | eagle | logo
    emblem_colour: tuple = GOLD
    side_panels: tuple | None = None
    shoulders: tuple | None = None
    chest_top: tuple | None = None
    leg_stripe: tuple | None = None
    boot_top: tuple | None = None
    bracelets: tuple | None = None
    tiara: bool = False
    katanas: bool = False
    buckle: bool = False
    stripes: tuple | None = None
    skirt: tuple | None = None
    glasses: bool = False
    scars: bool = False
    slim: float = 1.0


@dataclass(frozen=True)
class Pose:
    """Limb angles in radians: arms from hanging down (0) outwards, legs from vertical outwards."""

    arms: tuple  # (upper, bend) for left, right
    legs: tuple  # (thigh, bend) for left, right


class Pen:
    """Draws shapes given in figure units (head top 0, feet 1) after scale, rotation and translation."""

    def __init__(self, draw, centre, height, angle, pivot=(0.0, 0.3)):
        self.draw, self.scale, self.pivot = draw, height, pivot
        self.centre = centre
        self.cos, self.sin = math.cos(angle), math.sin(angle)

    def pt(self, x, y):
        x, y = (x - self.pivot[0]) * self.scale, (y - self.pivot[1]) * self.scale
        return (self.centre[0] + self.cos * x - self.sin * y, self.centre[1] + self.sin * x + self.cos * y)

    def poly(self, points, fill):
        self.draw.polygon([self.pt(x, y) for x, y in points], fill=fill)

    def circle(self, centre, radius, fill):
        x, y = self.pt(*centre)
        r = radius * self.scale
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def ellipse(self, centre, rx, ry, fill, tilt=0.0, start=0.0, stop=2 * math.pi, count=24):
        self.poly(ellipse_points(centre, rx, ry, tilt, start, stop, count), fill)

    def limb(self, start, end, width, fill):
        """A capsule: a thick segment with round ends, so joints look continuous."""
        (x0, y0), (x1, y1) = start, end
        length = math.hypot(x1 - x0, y1 - y0) or 1e-6
        nx, ny = -(y1 - y0) / length * width / 2, (x1 - x0) / length * width / 2
        self.poly([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], fill)
        self.circle(start, width / 2, fill)
        self.circle(end, width / 2, fill)

    def line(self, points, width, fill):
        pixels = max(1, round(width * self.scale))
        self.draw.line([self.pt(x, y) for x, y in points], fill=fill, width=pixels, joint="curve")


def ellipse_points(centre, rx, ry, tilt=0.0, start=0.0, stop=2 * math.pi, count=24):
    """Points on an (optionally tilted) ellipse arc, as a list of (x, y)."""
    cx, cy = centre
    c, s = math.cos(tilt), math.sin(tilt)
    points = []
    for t in numpy.linspace(start, stop, count):
        x, y = rx * math.cos(t), ry * math.sin(t)
        points.append((cx + c * x - s * y, cy + s * x + c * y))
    return points


def star_points(centre, outer, inner, points=5):
    """A star polygon with its first point straight up."""
    cx, cy = centre
    result = []
    for k in range(points * 2):
        radius = outer if k % 2 == 0 else inner
        angle = -math.pi / 2 + k * math.pi / points
        result.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return result


def jitter(rng, colour, amount=14):
    """A colour moved a little in each channel, so no two costumes are the same shade."""
    return tuple(int(min(255, max(0, c + rng.integers(-amount, amount + 1)))) for c in colour)


def random_colour(rng, saturation=(0.0, 1.0), value=(0.15, 1.0)):
    """Any hue; used for backgrounds and everyday clothes so colour alone is a weak cue."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return (int(r * 255), int(g * 255), int(b * 255))


def pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _batman(rng, unmasked):
    suit = jitter(rng, pick(rng, ((92, 94, 100), (70, 72, 78), (45, 45, 50))), 10)
    dark = jitter(rng, pick(rng, (BLACK, BLACK, (38, 48, 78))), 6)
    return Look(skin=jitter(rng, pick(rng, SKIN_TONES[:5])), torso=suit, abdomen=suit, upper_arm=suit,
                forearm=dark, hand=dark, thigh=suit, shin=dark, foot=dark, pelvis=dark, neck=dark,
                head="face" if unmasked else "cowl", head_colour=dark, hair=pick(rng, HAIR_COLOURS[:3]),
                hair_style="short", cape=dark, cape_length=rng.uniform(0.88, 0.97), scallops=True,
                belt=jitter(rng, YELLOW), pouches=True, emblem="bat", slim=rng.uniform(1.0, 1.12))


def _superman(rng, unmasked):
    blue = jitter(rng, (30, 80, 200), 18)
    red = jitter(rng, (205, 25, 30), 16)
    trunks = red if rng.random() < 0.6 else blue
    hair = pick(rng, HAIR_COLOURS) if unmasked else BLACK
    return Look(skin=jitter(rng, pick(rng, SKIN_TONES[:5])), torso=blue, abdomen=blue, upper_arm=blue,
                forearm=blue, hand=blue, thigh=blue, shin=red, foot=red, pelvis=trunks, neck=blue,
                hair=hair, hair_style=pick(rng, HAIR_STYLES) if unmasked else "curl", cape=red,
                cape_length=rng.uniform(0.75, 0.9), belt=jitter(rng, YELLOW), emblem="shield",
                slim=rng.uniform(1.0, 1.12), glasses=unmasked and rng.random() < 0.5)


def _wonder_woman(rng, unmasked):
    skin = jitter(rng, pick(rng, SKIN_TONES[:5]))
    red = jitter(rng, (200, 25, 35), 16)
    return Look(skin=skin, torso=red, abdomen=red, upper_arm=skin, forearm=skin, hand=skin, thigh=skin,
                shin=red, foot=red, pelvis=jitter(rng, (25, 55, 170), 16), neck=skin,
                hair=pick(rng, HAIR_COLOURS) if unmasked else pick(rng, HAIR_COLOURS[:2]),
                hair_style=pick(rng, ("short", "bob", "spiky")) if unmasked else "long",
                belt=jitter(rng, GOLD), emblem="eagle", chest_top=skin, boot_top=WHITE,
                bracelets=(200, 200, 210), tiara=not unmasked, slim=rng.uniform(0.86, 0.95))


def _captain_marvel(rng, unmasked):
    blue = jitter(rng, (25, 45, 130), 16)
    red = jitter(rng, (200, 30, 40), 16)
    return Look(skin=jitter(rng, pick(rng, SKIN_TONES[:4])), torso=blue, abdomen=red, upper_arm=red,
                forearm=blue, hand=red, thigh=blue, shin=red, foot=red, pelvis=red, neck=blue,
                hair=pick(rng, HAIR_COLOURS[:3]) if unmasked else jitter(rng, (228, 190, 105), 10),
                hair_style="short" if unmasked else pick(rng, ("long", "bob")), belt=jitter(rng, GOLD),
                emblem="star", side_panels=red, shoulders=red, leg_stripe=red, slim=rng.uniform(0.88, 0.98))


def _deadpool(rng, unmasked):
    red = jitter(rng, (178, 20, 28), 16)
    return Look(skin=jitter(rng, (196, 120, 110), 10) if unmasked else red, torso=red, abdomen=red,
                upper_arm=red, forearm=red, hand=pick(rng, (red, BLACK)), thigh=red, shin=red,
                foot=BLACK, pelvis=red, neck=red, head="face" if unmasked else "mask", head_colour=red,
                hair_style="bald", belt=(55, 55, 58), pouches=True, buckle=True, side_panels=BLACK,
                shoulders=BLACK, katanas=True, scars=unmasked, slim=rng.uniform(0.98, 1.08))


def _person(rng, unmasked):
    skin = jitter(rng, pick(rng, SKIN_TONES), 8)
    shirt = random_colour(rng)
    sleeves = rng.random()
    upper = skin if sleeves < 0.1 else shirt
    fore = skin if sleeves < 0.55 else shirt
    trousers = pick(rng, ((55, 85, 150), (60, 90, 140), (30, 30, 35), (190, 170, 120), (120, 120, 125),
                          (90, 60, 40), random_colour(rng)))
    legwear = rng.random()
    jacket = random_colour(rng, value=(0.1, 0.7)) if rng.random() < 0.25 else None
    if jacket:
        upper, fore = jacket, jacket
    shoes = pick(rng, ((35, 30, 30), (235, 235, 235), (110, 70, 40), random_colour(rng)))
    return Look(skin=skin, torso=shirt, abdomen=shirt, upper_arm=upper, forearm=fore, hand=skin,
                thigh=trousers, shin=skin if legwear < 0.15 else trousers, foot=shoes, pelvis=trousers,
                neck=skin, hair=pick(rng, HAIR_COLOURS), hair_style=pick(rng, HAIR_STYLES),
                belt=pick(rng, ((60, 40, 25), (20, 20, 20))) if rng.random() < 0.3 else None,
                emblem="logo" if rng.random() < 0.3 else None, emblem_colour=random_colour(rng),
                side_panels=jacket, stripes=random_colour(rng) if rng.random() < 0.25 else None,
                skirt=random_colour(rng) if 0.15 <= legwear < 0.3 else None,
                glasses=rng.random() < 0.2, slim=rng.uniform(0.85, 1.1))


LOOKS = {"batman": _batman, "superman": _superman, "wonder_woman": _wonder_woman,
         "captain_marvel": _captain_marvel, "deadpool": _deadpool, "not_a_hero": _person}


def random_pose(rng):
    """Independent arms (down, hands on hips, out, raised) and legs; the same for every class."""
    arms = []
    for _ in range(2):
        kind = rng.random()
        if kind < 0.35:
            arm = (rng.uniform(0.08, 0.4), rng.uniform(-0.1, 0.3))
        elif kind < 0.6:
            arm = (rng.uniform(0.6, 0.85), rng.uniform(-2.0, -1.6))
        elif kind < 0.85:
            arm = (rng.uniform(1.0, 1.9), rng.uniform(-0.5, 0.6))
        else:
            arm = (rng.uniform(2.3, 3.0), rng.uniform(-0.3, 0.3))
        arms.append(arm)
    legs = tuple((rng.uniform(0.02, 0.35), rng.uniform(-0.2, 0.15)) for _ in range(2))
    return Pose(arms=tuple(arms), legs=legs)


def _joints(base, angle, bend, upper, lower, side):
    """Elbow/knee and hand/ankle positions of a two-segment limb; side is -1 (left) or +1 (right)."""
    x, y = base
    middle = (x + side * upper * math.sin(angle), y + upper * math.cos(angle))
    end = (middle[0] + side * lower * math.sin(angle + bend), middle[1] + lower * math.cos(angle + bend))
    return middle, end


def draw_figure(pen, pose, look):
    """The whole figure, back to front: cape, legs, torso, arms, emblem, head."""
    shoulder = 0.125 * look.slim
    if look.cape:
        _cape(pen, look, shoulder)
    if look.katanas:
        pen.line([(-0.16, 0.36), (0.13, -0.02)], 0.018, BLACK)
        pen.line([(0.16, 0.36), (-0.13, -0.02)], 0.018, BLACK)
    if look.hair_style in ("long", "bob") and look.head == "face":
        bottom = 0.3 if look.hair_style == "long" else 0.19
        pen.poly([(-0.075, 0.06), (0.075, 0.06), (0.085, bottom), (-0.085, bottom)], look.hair)
    _legs(pen, pose, look)
    _torso(pen, look, shoulder)
    _arms(pen, pose, look, shoulder)
    _emblem(pen, look, shoulder)
    _head(pen, look)


def _cape(pen, look, shoulder):
    bottom, flare = look.cape_length, 0.12 + 0.05 * look.slim
    left, right = (-shoulder - flare, bottom), (shoulder + flare, bottom)
    edge = []
    if look.scallops:
        count = 6
        for k in range(count + 1):
            x = right[0] + (left[0] - right[0]) * k / count
            edge.append((x, bottom - (0.0 if k % 2 == 0 else 0.04)))
    else:
        edge = [right, left]
    pen.poly([(-shoulder + 0.01, 0.19), (shoulder - 0.01, 0.19)] + edge, look.cape)


def _legs(pen, pose, look):
    for side, (angle, bend) in zip((-1, 1), pose.legs):
        hip = (side * 0.052, 0.53)
        knee, ankle = _joints(hip, angle, bend, 0.22, 0.21, side)
        pen.limb(hip, knee, 0.085, look.thigh)
        if look.leg_stripe:
            pen.line([(hip[0] + side * 0.03, hip[1]), (knee[0] + side * 0.03, knee[1])], 0.02, look.leg_stripe)
        pen.limb(knee, ankle, 0.068, look.shin)
        if look.boot_top:
            top = (knee[0] * 0.8 + ankle[0] * 0.2, knee[1] * 0.8 + ankle[1] * 0.2)
            pen.limb(knee, top, 0.07, look.boot_top)
        pen.poly([(ankle[0] - 0.03, ankle[1] - 0.02), (ankle[0] + 0.03, ankle[1] - 0.02),
                  (ankle[0] + side * 0.06, ankle[1] + 0.025), (ankle[0] - side * 0.03, ankle[1] + 0.025)],
                 look.foot)
    if look.skirt:
        pen.poly([(-0.095, 0.44), (0.095, 0.44), (0.16, 0.7), (-0.16, 0.7)], look.skirt)


def _torso(pen, look, shoulder):
    outline = [(-shoulder, 0.2), (shoulder, 0.2), (shoulder * 0.95, 0.27), (0.085, 0.45), (-0.085, 0.45),
               (-shoulder * 0.95, 0.27)]
    pen.poly(outline, look.torso)
    pen.poly([(-0.092, 0.35), (0.092, 0.35), (0.085, 0.45), (-0.085, 0.45)], look.abdomen)
    if look.stripes:
        for y in numpy.arange(0.24, 0.44, 0.04):
            pen.line([(-shoulder * 0.9, y), (shoulder * 0.9, y)], 0.012, look.stripes)
    if look.side_panels:
        for side in (-1, 1):
            pen.poly([(side * shoulder, 0.2), (side * shoulder * 0.55, 0.2), (side * 0.05, 0.45),
                      (side * 0.085, 0.45), (side * shoulder * 0.95, 0.27)], look.side_panels)
    if look.chest_top:
        pen.poly([(-shoulder, 0.2), (shoulder, 0.2), (shoulder * 0.95, 0.235), (0.0, 0.25),
                  (-shoulder * 0.95, 0.235)], look.chest_top)
    pen.poly([(-0.095, 0.44), (0.095, 0.44), (0.108, 0.565), (0.0, 0.585), (-0.108, 0.565)], look.pelvis)
    if look.belt:
        _belt(pen, look)


def _belt(pen, look):
    pen.poly([(-0.092, 0.435), (0.092, 0.435), (0.096, 0.468), (-0.096, 0.468)], look.belt)
    if look.pouches:
        shade = tuple(int(c * 0.75) for c in look.belt)
        for x in (-0.07, -0.035, 0.035, 0.07):
            pen.poly([(x - 0.012, 0.44), (x + 0.012, 0.44), (x + 0.012, 0.475), (x - 0.012, 0.475)], shade)
    if look.buckle:
        pen.circle((0.0, 0.452), 0.026, BLACK)
        pen.circle((0.0, 0.452), 0.021, (190, 20, 28))
        pen.poly([(-0.005, 0.43), (0.005, 0.43), (0.005, 0.474), (-0.005, 0.474)], BLACK)


def _arms(pen, pose, look, shoulder):
    for side, (angle, bend) in zip((-1, 1), pose.arms):
        joint = (side * (shoulder - 0.02), 0.22)
        elbow, hand = _joints(joint, angle, bend, 0.17, 0.16, side)
        pen.circle(joint, 0.037, look.shoulders or look.upper_arm)
        pen.limb(joint, elbow, 0.06, look.upper_arm)
        pen.limb(elbow, hand, 0.05, look.forearm)
        if look.bracelets:
            wrist = (elbow[0] * 0.3 + hand[0] * 0.7, elbow[1] * 0.3 + hand[1] * 0.7)
            pen.limb(wrist, hand, 0.056, look.bracelets)
        pen.circle(hand, 0.032, look.hand)
        if look.shoulders:
            pen.circle(joint, 0.036, look.shoulders)


def _emblem(pen, look, shoulder):
    scale = shoulder / 0.125
    centre = (0.0, 0.29)
    if look.emblem == "bat":
        pen.ellipse(centre, 0.074 * scale, 0.047 * scale, BLACK)
        pen.ellipse(centre, 0.066 * scale, 0.04 * scale, look.belt or YELLOW)
        pen.poly([(centre[0] + 0.056 * scale * x, centre[1] + 0.07 * scale * y) for x, y in BAT], BLACK)
    elif look.emblem == "shield":
        _shield(pen, centre, scale)
    elif look.emblem == "star":
        pen.line([(-shoulder * 0.8, 0.205), (0.0, 0.29), (shoulder * 0.8, 0.205)], 0.012, GOLD)
        pen.poly(star_points(centre, 0.06 * scale, 0.025 * scale), GOLD)
    elif look.emblem == "eagle":
        w = shoulder * 0.9
        pen.line([(-w, 0.245), (-w * 0.5, 0.3), (0.0, 0.26), (w * 0.5, 0.3), (w, 0.245)], 0.022, GOLD)
    elif look.emblem == "logo":
        pen.poly([(-0.04, 0.26), (0.04, 0.26), (0.04, 0.31), (-0.04, 0.31)], look.emblem_colour)


def _shield(pen, centre, scale):
    """Superman's five-sided shield: red rim, yellow field, a red S."""
    cx, cy = centre

    def shape(k):
        return [(cx - 0.078 * k, cy - 0.06 * k), (cx + 0.078 * k, cy - 0.06 * k), (cx + 0.1 * k, cy - 0.025 * k),
                (cx, cy + 0.065 * k), (cx - 0.1 * k, cy - 0.025 * k)]

    pen.poly(shape(scale), (205, 25, 30))
    pen.poly(shape(scale * 0.8), YELLOW)
    s = scale
    pen.line([(cx + 0.045 * s, cy - 0.036 * s), (cx - 0.03 * s, cy - 0.036 * s), (cx - 0.045 * s, cy - 0.018 * s),
              (cx - 0.025 * s, cy - 0.004 * s), (cx + 0.025 * s, cy), (cx + 0.03 * s, cy + 0.014 * s),
              (cx + 0.005 * s, cy + 0.032 * s), (cx - 0.03 * s, cy + 0.022 * s)], 0.014 * s, (205, 25, 30))


def _head(pen, look):
    pen.poly([(-0.03, 0.13), (0.03, 0.13), (0.032, 0.21), (-0.032, 0.21)], look.neck)
    if look.head == "cowl":
        _cowl(pen, look)
    elif look.head == "mask":
        _mask(pen, look)
    else:
        _face(pen, look)


def _eyes_and_mouth(pen, look):
    for side in (-1, 1):
        pen.circle((side * 0.022, 0.088), 0.0075, (30, 25, 25))
    pen.line([(-0.016, 0.128), (0.016, 0.128)], 0.006, (120, 45, 45))


def _face(pen, look):
    pen.ellipse((0.0, 0.085), 0.058, 0.075, look.skin)
    if look.scars:
        shade = tuple(int(c * 0.8) for c in look.skin)
        for x, y, r in ((-0.03, 0.06, 0.014), (0.025, 0.11, 0.012), (0.01, 0.035, 0.01), (-0.02, 0.12, 0.009)):
            pen.circle((x, y), r, shade)
    _eyes_and_mouth(pen, look)
    if look.glasses:
        for side in (-1, 1):
            pen.line(ellipse_points((side * 0.023, 0.088), 0.016, 0.012, count=12), 0.005, (30, 30, 30))
    if look.hair_style != "bald":
        _hair(pen, look)
    if look.tiara:
        pen.line([(-0.058, 0.05), (0.0, 0.035), (0.058, 0.05)], 0.014, GOLD)
        pen.poly(star_points((0.0, 0.038), 0.016, 0.007), (210, 20, 30))


def _hair(pen, look):
    top = ellipse_points((0.0, 0.085), 0.064, 0.083, start=math.pi, stop=2 * math.pi, count=16)
    pen.poly(top + [(0.05, 0.055), (0.0, 0.045), (-0.05, 0.055)], look.hair)
    if look.hair_style == "spiky":
        for x in (-0.04, -0.013, 0.013, 0.04):
            pen.poly([(x - 0.017, 0.01), (x + 0.017, 0.01), (x, -0.025)], look.hair)
    if look.hair_style == "curl":  # Superman's forelock: a small hook over the forehead
        pen.line([(0.004, 0.045), (-0.012, 0.056), (-0.01, 0.07), (0.002, 0.066)], 0.008, look.hair)


def _cowl(pen, look):
    """Batman: cowl with pointed ears and white eye slits; only the jaw shows skin."""
    for side in (-1, 1):
        pen.poly([(side * 0.058, 0.06), (side * 0.016, 0.03), (side * 0.05, -0.045)], look.head_colour)
    pen.ellipse((0.0, 0.085), 0.06, 0.076, look.head_colour)
    jaw = ellipse_points((0.0, 0.085), 0.05, 0.074, start=0.12 * math.pi, stop=0.88 * math.pi, count=12)
    pen.poly(jaw + [(-0.04, 0.11), (0.04, 0.11)], look.skin)
    for side in (-1, 1):
        pen.poly([(side * 0.036, 0.077), (side * 0.01, 0.083), (side * 0.012, 0.091), (side * 0.034, 0.088)],
                 WHITE)
    pen.line([(-0.014, 0.133), (0.014, 0.133)], 0.006, (110, 45, 45))


def _mask(pen, look):
    """Deadpool: a red full mask with two large black eye patches and small white eyes."""
    pen.ellipse((0.0, 0.085), 0.058, 0.075, look.head_colour)
    for side in (-1, 1):
        pen.ellipse((side * 0.026, 0.083), 0.027, 0.021, BLACK, tilt=side * -0.35)
        pen.ellipse((side * 0.024, 0.085), 0.012, 0.006, WHITE, tilt=side * -0.25, count=12)


def background(rng, side):
    """A smooth random gradient, sometimes a street or a room, then random clutter shapes."""
    cells = int(rng.integers(2, 4))
    grid = numpy.array([_muted(rng) for _ in range(cells * cells)], dtype=numpy.uint8)
    image = Image.fromarray(grid.reshape(cells, cells, 3), "RGB").resize((side, side), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    scene = rng.random()
    if scene < 0.3:
        _street(rng, draw, side)
    elif scene < 0.55:
        _room(rng, draw, side)
    for _ in range(int(rng.integers(3, 12))):
        _clutter_shape(rng, draw, side)
    return image


def _muted(rng):
    return random_colour(rng, *BACKGROUND_HSV)


def _street(rng, draw, side):
    horizon = rng.uniform(0.5, 0.85) * side
    for _ in range(int(rng.integers(2, 6))):
        x0, width = rng.uniform(-0.1, 0.9) * side, rng.uniform(0.1, 0.35) * side
        top = horizon - rng.uniform(0.2, 0.7) * side
        draw.rectangle((x0, top, x0 + width, horizon), fill=_muted(rng))
        window = random_colour(rng, saturation=(0, 0.3))
        for wx in numpy.arange(x0 + 0.02 * side, x0 + width - 0.04 * side, 0.06 * side):
            for wy in numpy.arange(top + 0.03 * side, horizon - 0.05 * side, 0.08 * side):
                draw.rectangle((wx, wy, wx + 0.03 * side, wy + 0.04 * side), fill=window)
    draw.rectangle((0, horizon, side, side), fill=_muted(rng))


def _room(rng, draw, side):
    floor = rng.uniform(0.6, 0.9) * side
    draw.rectangle((0, 0, side, floor), fill=_muted(rng))
    draw.rectangle((0, floor, side, side), fill=_muted(rng))
    x, y = rng.uniform(0.05, 0.7) * side, rng.uniform(0.05, 0.4) * side
    draw.rectangle((x, y, x + 0.25 * side, y + 0.2 * side), fill=random_colour(rng), outline=(60, 40, 20),
                   width=max(1, side // 80))


def _clutter_shape(rng, draw, side):
    colour = random_colour(rng) if rng.random() < 0.25 else _muted(rng)
    x0, y0 = rng.uniform(-0.1, 1.0, 2) * side
    w, h = rng.uniform(0.04, 0.35, 2) * side
    kind = rng.random()
    if kind < 0.3:
        draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
    elif kind < 0.6:
        draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
    elif kind < 0.8:
        points = [tuple(p) for p in (rng.uniform(-0.1, 1.1, (int(rng.integers(3, 6)), 2)) * side)]
        draw.polygon(points, fill=colour)
    else:
        x1, y1 = rng.uniform(0, 1, 2) * side
        draw.line((x0, y0, x1, y1), fill=colour, width=max(1, int(rng.uniform(0.005, 0.03) * side)))


def occlude(rng, draw, side):
    """Something in front of the figure: a post, a table edge, or a blob."""
    colour = random_colour(rng)
    kind = rng.random()
    if kind < 0.35:
        x, width = rng.uniform(0.0, 1.0) * side, rng.uniform(0.06, 0.16) * side
        draw.rectangle((x - width / 2, 0, x + width / 2, side), fill=colour)
    elif kind < 0.7:
        draw.rectangle((0, rng.uniform(0.7, 0.88) * side, side, side), fill=colour)
    else:
        x, y = rng.uniform(0, 1, 2) * side
        r = rng.uniform(0.06, 0.14) * side
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)


def place(rng, draw, side):
    """Position, size and tilt of the figure: close-ups of head and chest (``CLOSE_UP_SHARE``) or full body."""
    if rng.random() < CLOSE_UP_SHARE:
        height = rng.uniform(1.5, 2.4) * side
        top = rng.uniform(0.03, 0.15) * side
        x = rng.uniform(0.38, 0.62) * side
        angle = rng.normal(0.0, 0.08)
    else:
        height = rng.uniform(0.65, 0.95) * side
        top = rng.uniform(-0.02, max(-0.01, 1.02 - height / side)) * side
        x = rng.uniform(0.28, 0.72) * side
        angle = float(numpy.clip(rng.normal(0.0, 0.14), -0.45, 0.45))
    return Pen(draw, (x, top + 0.3 * height), height, angle)


def finish(rng, image):
    """Lighting (gain, colour cast, a directional ramp), optional blur, sensor noise."""
    if rng.random() < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0) * image.width / 224))
    side = image.width
    array = numpy.array(image, dtype=numpy.float32)
    gain = rng.uniform(0.88, 1.12) * rng.uniform(0.97, 1.03, 3).astype(numpy.float32)
    theta, amplitude = rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 0.35)
    ramp = numpy.linspace(-amplitude, amplitude, side, dtype=numpy.float32)
    light = 1.0 + math.cos(theta) * ramp[None, :] + math.sin(theta) * ramp[:, None]
    array *= light[:, :, None] * gain  # in place: this function is a large share of the run time
    if rng.random() < 0.75:
        noise = rng.standard_normal(array.shape, dtype=numpy.float32)
        noise *= rng.uniform(1.0, 9.0)
        array += noise
    numpy.clip(array, 0, 255, out=array)
    return Image.fromarray(array.astype(numpy.uint8), "RGB")


def draw_image(label, rng, size, unmasked=False):
    """One RGB picture of ``label`` on a cluttered background; ``unmasked`` bares a hero's face."""
    if label not in LOOKS:
        raise ValueError(f"unknown class {label!r}; expected one of {', '.join(LOOKS)}")
    side = size * SUPERSAMPLE
    canvas = background(rng, side)
    draw = ImageDraw.Draw(canvas)
    look = LOOKS[label](rng, unmasked)
    pen = place(rng, draw, side)
    draw_figure(pen, random_pose(rng), look)
    if rng.random() < 0.3:
        occlude(rng, draw, side)
    return finish(rng, canvas.reduce(SUPERSAMPLE))
