from flask import Blueprint
bp = Blueprint("audit_views", __name__)
